/**
 * What a principal and a tenant may hold at once beyond sessions (`policy.limits`, ADR 0015):
 * requests in flight, open streams, live MCP tasks, and calls of one tool on this instance. MCP
 * 2026-07-28 traffic opens no session, so the session quotas (`quotas.ts`) never see it; these
 * budgets count every request, session or stateless, against the same principal.
 *
 * Counted on this instance. A kind whose limits are all unset is never counted (the hot path pays
 * one branch). Tasks are counted when the front (or the task-routing code) reports a created task
 * and released at a terminal status or at its `ttlMs`, whichever comes first.
 */
import type { LimitsSettings } from '../../policy/index.js';
import { AgentError } from '../core/errors.js';
import type { Caller } from '../core/tenancy.js';

export type BudgetKind = 'requests' | 'streams' | 'tasks';

const LIMIT_FIELDS = {
  requests: ['requestsPerPrincipal', 'requestsPerTenant'],
  streams: ['streamsPerPrincipal', 'streamsPerTenant'],
  tasks: ['tasksPerPrincipal', 'tasksPerTenant'],
} as const satisfies Record<BudgetKind, readonly [keyof LimitsSettings, keyof LimitsSettings]>;

/** One caller's use, as the inventory shows it. */
export interface BudgetUse {
  readonly principal: string | undefined;
  readonly tenant: string | undefined;
  readonly requests: number;
  readonly streams: number;
  readonly tasks: number;
}

interface LiveTask {
  readonly caller: Caller;
  readonly expiresAt: number;
}

/** The principal's key: its name within its tenant (alice of acme is not alice of globex). */
function principalKey(caller: Caller): string | undefined {
  return caller.principal ? `${caller.tenant ?? ''}\u0000${caller.principal}` : undefined;
}

export class Budgets {
  private readonly counts: Record<BudgetKind, Map<string, number>> = {
    requests: new Map(),
    streams: new Map(),
    tasks: new Map(),
  };
  private readonly enabled: Record<BudgetKind, boolean>;
  private readonly tools = new Map<string, number>();
  private readonly tasks = new Map<string, LiveTask>();
  /** The rest of the fleet's counts as of the last sync (`<kind>\n<who>` → count); empty alone. */
  private remote: ReadonlyMap<string, number> = new Map();
  private readonly now: () => number;
  private readonly onRefusal: ((limit: string) => void) | undefined;

  /**
   * `onRefusal`: told the limit's field name each time a budget refuses (the front counts it in
   * `sessionfleet_limit_refusals_total{front, limit}`, the same series for both fronts).
   */
  constructor(
    private readonly limits: LimitsSettings,
    options: { now?: () => number; onRefusal?: (limit: string) => void } = {},
  ) {
    this.now = options.now ?? Date.now;
    this.onRefusal = options.onRefusal;
    const on = (kind: BudgetKind) => LIMIT_FIELDS[kind].some((field) => limits[field] !== undefined);
    this.enabled = { requests: on('requests'), streams: on('streams'), tasks: on('tasks') };
  }

  /** Whether a task limit is set (only then are tasks counted). */
  get countsTasks(): boolean {
    return this.enabled.tasks;
  }

  /** Whether a tool key has a concurrency limit (`"<Mcp-Method> <Mcp-Name>"`). */
  toolLimit(key: string): number | undefined {
    return this.limits.toolConcurrency?.[key];
  }

  /** Takes one unit of `kind` for `caller`, or says whose limit is reached. Pair with `release`. */
  acquire(kind: BudgetKind, caller: Caller): AgentError | undefined {
    if (!this.enabled[kind]) return undefined;
    if (kind === 'tasks') this.expireTasks();
    const refusal = this.refusal(kind, caller);
    if (refusal) return refusal;
    this.add(kind, caller, 1);
    return undefined;
  }

  release(kind: BudgetKind, caller: Caller): void {
    if (this.enabled[kind]) this.add(kind, caller, -1);
  }

  /**
   * Whether `caller` may start work that can create a task (a `tools/call`): refused while it
   * holds its task limit. Takes nothing: the task is counted when it is created.
   */
  mayStartTask(caller: Caller): AgentError | undefined {
    if (!this.enabled.tasks) return undefined;
    this.expireTasks();
    return this.refusal('tasks', caller);
  }

  /**
   * The hook for the code that sees a `CreateTaskResult` pass: the task counts against its
   * creator until `taskEnded` (a terminal status, a cancel) or `ttlMs`. A task id seen again is
   * counted once.
   */
  taskStarted(taskId: string, caller: Caller, ttlMs: number | undefined): void {
    if (!this.enabled.tasks || this.tasks.has(taskId)) return;
    const ttl = ttlMs !== undefined && Number.isFinite(ttlMs) && ttlMs > 0 ? ttlMs : Number.POSITIVE_INFINITY;
    this.tasks.set(taskId, { caller, expiresAt: this.now() + ttl });
    this.add('tasks', caller, 1);
  }

  /** The task reached a terminal status or was cancelled. Unknown ids are ignored. */
  taskEnded(taskId: string): void {
    const task = this.tasks.get(taskId);
    if (!task) return;
    this.tasks.delete(taskId);
    this.add('tasks', task.caller, -1);
  }

  /** Takes a call slot of a limited tool; false when it is at its limit. */
  acquireTool(key: string): AgentError | undefined {
    const limit = this.toolLimit(key);
    if (limit === undefined) return undefined;
    const held = this.tools.get(key) ?? 0;
    if (held >= limit) {
      this.onRefusal?.('toolConcurrency');
      return new AgentError('TOOL_CONCURRENCY_REACHED', `this instance serves ${held} calls of ${key}, its limit`, {
        retryAfterSeconds: 1,
        details: { limit: 'toolConcurrency', tool: key, value: limit },
      });
    }
    this.tools.set(key, held + 1);
    return undefined;
  }

  releaseTool(key: string): void {
    const held = this.tools.get(key);
    if (held === undefined) return;
    if (held <= 1) this.tools.delete(key);
    else this.tools.set(key, held - 1);
  }

  /** Whether any per-principal or per-tenant limit is set (only then is there anything to share). */
  get shared(): boolean {
    return this.enabled.requests || this.enabled.streams || this.enabled.tasks;
  }

  /** This agent's counts for the fleet (`<kind>\n<who>` → count). */
  snapshot(): Map<string, number> {
    this.expireTasks();
    const out = new Map<string, number>();
    for (const kind of ['requests', 'streams', 'tasks'] as const) {
      for (const [who, count] of this.counts[kind]) out.set(`${kind}\n${who}`, count);
    }
    return out;
  }

  /** The rest of the fleet's counts, from the budget sync: limits are checked against both. */
  setRemote(remote: ReadonlyMap<string, number>): void {
    this.remote = remote;
  }

  /** Live counts per principal (and per tenant under the empty principal), for the inventory. */
  use(): BudgetUse[] {
    this.expireTasks();
    const rows = new Map<
      string,
      { principal: string | undefined; tenant: string | undefined } & Record<BudgetKind, number>
    >();
    for (const kind of ['requests', 'streams', 'tasks'] as const) {
      for (const [key, count] of this.counts[kind]) {
        if (!key.startsWith('p:')) continue;
        const [tenant, principal] = key.slice(2).split('\u0000') as [string, string];
        const row = rows.get(key) ?? { principal, tenant: tenant || undefined, requests: 0, streams: 0, tasks: 0 };
        row[kind] = count;
        rows.set(key, row);
      }
    }
    return [...rows.values()];
  }

  /** How many of `kind` a principal (with `principal`) or a tenant (without) holds now. */
  held(kind: BudgetKind, caller: Caller): number {
    const key = caller.principal ? principalKey(caller) : caller.tenant;
    if (key === undefined) return 0;
    return this.counts[kind].get(caller.principal ? `p:${key}` : `t:${key}`) ?? 0;
  }

  private refusal(kind: BudgetKind, caller: Caller): AgentError | undefined {
    const [principalField, tenantField] = LIMIT_FIELDS[kind];
    const principalLimit = this.limits[principalField] as number | undefined;
    const tenantLimit = this.limits[tenantField] as number | undefined;
    const pKey = principalKey(caller);
    if (pKey !== undefined && principalLimit !== undefined) {
      const held = this.heldAt(kind, `p:${pKey}`);
      if (held >= principalLimit) {
        this.onRefusal?.(principalField);
        return new AgentError(
          'PRINCIPAL_LIMIT_REACHED',
          `principal ${JSON.stringify(caller.principal)} holds ${held} ${kind}, its ${principalField} (${principalLimit})`,
          {
            retryAfterSeconds: 1,
            details: {
              limit: principalField,
              value: principalLimit,
              principal: caller.principal,
              ...(caller.tenant ? { tenant: caller.tenant } : {}),
            },
          },
        );
      }
    }
    if (caller.tenant && tenantLimit !== undefined) {
      const held = this.heldAt(kind, `t:${caller.tenant}`);
      if (held >= tenantLimit) {
        this.onRefusal?.(tenantField);
        return new AgentError(
          'TENANT_LIMIT_REACHED',
          `tenant ${JSON.stringify(caller.tenant)} holds ${held} ${kind}, its ${tenantField} (${tenantLimit})`,
          { retryAfterSeconds: 1, details: { limit: tenantField, value: tenantLimit, tenant: caller.tenant } },
        );
      }
    }
    return undefined;
  }

  /** Held here plus held by the rest of the fleet (as of the last sync). */
  private heldAt(kind: BudgetKind, who: string): number {
    return (this.counts[kind].get(who) ?? 0) + (this.remote.get(`${kind}\n${who}`) ?? 0);
  }

  private add(kind: BudgetKind, caller: Caller, delta: 1 | -1): void {
    const counts = this.counts[kind];
    const pKey = principalKey(caller);
    for (const key of [
      pKey === undefined ? undefined : `p:${pKey}`,
      caller.tenant ? `t:${caller.tenant}` : undefined,
    ]) {
      if (key === undefined) continue;
      const next = (counts.get(key) ?? 0) + delta;
      if (next <= 0) counts.delete(key);
      else counts.set(key, next);
    }
  }

  /** Tasks past their `ttlMs` are gone upstream: they stop counting. */
  private expireTasks(): void {
    if (this.tasks.size === 0) return;
    const now = this.now();
    for (const [id, task] of this.tasks) if (task.expiresAt <= now) this.taskEnded(id);
  }
}
