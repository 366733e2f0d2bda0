/**
 * The reconcile after a restart (issue #14 §4, ADR 0022). An agent killed without a drain and
 * started again under the same instance id finds the registry still giving it the sessions of its
 * earlier life, and its upstream still holding most of them. Before its first resync (which would
 * release every one of them), it decides for each: adopt it again (the upstream holds it: the
 * client's next request just works), or end it (the upstream does not know it, or its time is up:
 * the client gets the normal expired answer and the quota places are freed). A session another
 * instance owns by now is left alone.
 *
 * The decision is two pure functions (`planFor`, `afterAnswer`); the `Reconciler` reads the
 * registry, asks the upstream through the front (a bounded number at a time, within a time
 * budget), and carries the decisions out. The resync that follows registers what was adopted
 * atomically: a session re-homed meanwhile is reported as a conflict there and dropped here.
 */
import type { UpstreamSessionVerdict } from '../core/context.js';
import { isValidSessionId } from '../core/session-id.js';
import type { InstanceLease } from './instance-lease.js';
import type { FleetKeys } from './keys.js';
import { decodeRecord, type EndedReason, type SessionRecord } from './registry.js';
import type { FleetState } from './state.js';
import type { RestartReconcile, UpstreamSessions } from './types.js';

/** The coordinator's reconcile part: wired to the lease's first registration once the front says how to ask. */
export class ReconcileOnRestart implements RestartReconcile {
  constructor(
    private readonly s: FleetState,
    private readonly keys: FleetKeys,
    private readonly lease: InstanceLease,
  ) {}

  get running(): boolean {
    return this.s.reconciling !== undefined;
  }

  askWith(upstream: UpstreamSessions): void {
    const o = this.s.o;
    if (o.reconcileMs <= 0) return;
    const reconciler = new Reconciler(this.s, this.keys, upstream, {
      budgetMs: o.reconcileMs,
      concurrency: o.reconcileConcurrency,
    });
    this.lease.onFirstRegistration(async () => {
      await reconciler.run();
    });
  }
}

/** How each session of the earlier life came out (the metric's `outcome` label). */
export type ReconcileOutcome = 'adopted' | 'ended' | 'failed';

/** What the reconcile does with a record before asking the upstream. */
export type Plan =
  /** Not this reconcile's: another instance owns it by now, or this agent holds it already. */
  | { readonly kind: 'leave'; readonly why: 'owned-elsewhere' | 'held-here' }
  /** Over, whatever the upstream says; `upstream`: it may still hold it, so end it there too. */
  | { readonly kind: 'end'; readonly reason: EndedReason; readonly upstream: boolean }
  | { readonly kind: 'ask' };

export interface PlanFacts {
  readonly self: string;
  /** This agent's clock: the times in a record are its owner's. */
  readonly now: number;
  /** The policy's idle timeout (0: none). */
  readonly idleMs: number;
  readonly heldHere: boolean;
  /** The last activity the earlier life wrote back, if any. */
  readonly lastActiveAt: number | undefined;
}

/** A record's plan: `undefined` stands for one that cannot be decoded or makes no sense. */
export function planFor(record: SessionRecord | undefined, f: PlanFacts): Plan {
  if (record !== undefined && record.owner !== f.self) return { kind: 'leave', why: 'owned-elsewhere' };
  if (f.heldHere) return { kind: 'leave', why: 'held-here' };
  if (record === undefined || !usable(record)) return { kind: 'end', reason: 'owner-lost', upstream: true };
  if (f.now >= record.expiresAt) return { kind: 'end', reason: 'expired-lifetime', upstream: true };
  const last = Math.max(record.createdAt, f.lastActiveAt ?? record.createdAt);
  if (f.idleMs > 0 && f.now - last >= f.idleMs) return { kind: 'end', reason: 'expired-idle', upstream: true };
  return { kind: 'ask' };
}

/**
 * What the upstream's answer decides. Held: adopted. Gone: ended (handed off if its state is on
 * shared storage, where another instance may resume it). No answer within the budget: kept as
 * held, counted `failed` — ending a session the upstream may hold would leak it there and cut its
 * client off; keeping one it lost costs a slot until the idle timeout, and the client gets the
 * upstream's own answer.
 */
export function afterAnswer(
  verdict: UpstreamSessionVerdict,
  record: Pick<SessionRecord, 'resumable'>,
):
  | { readonly kind: 'adopt'; readonly outcome: 'adopted' | 'failed' }
  | { readonly kind: 'end'; readonly mode: 'delete' | 'handoff' } {
  switch (verdict) {
    case 'held':
      return { kind: 'adopt', outcome: 'adopted' };
    case 'unanswered':
      return { kind: 'adopt', outcome: 'failed' };
    case 'gone':
      return { kind: 'end', mode: record.resumable ? 'handoff' : 'delete' };
  }
}

function usable(record: SessionRecord): boolean {
  return (
    isValidSessionId(record.id) &&
    Number.isFinite(record.createdAt) &&
    Number.isFinite(record.expiresAt) &&
    record.expiresAt > record.createdAt
  );
}

export interface ReconcileSummary {
  adopted: number;
  ended: number;
  failed: number;
  /** Named by the index but owned elsewhere by now, or already held here. */
  left: number;
  ms: number;
}

/** At most this many sessions of the earlier life are read (an instance holds at most 200). */
const READ_LIMIT = 10_000;

export class Reconciler {
  constructor(
    private readonly s: FleetState,
    private readonly keys: FleetKeys,
    private readonly upstream: UpstreamSessions,
    private readonly options: { readonly budgetMs: number; readonly concurrency: number },
  ) {}

  async run(): Promise<ReconcileSummary> {
    const s = this.s;
    const started = Date.now();
    const deadline = started + this.options.budgetMs;
    const summary: ReconcileSummary = { adopted: 0, ended: 0, failed: 0, left: 0, ms: 0 };
    const ids = await s.registry.idsOf('instance', s.instanceId, READ_LIMIT);
    if (ids.length === 0) return summary;
    const [raws, lastActive] = await Promise.all([
      s.redis.hmget(this.keys.sessions, ...ids),
      s.registry.lastActive(ids),
    ]);
    const now = Date.now();
    const idleMs = s.context.policy.sessionIdleTimeoutSeconds * 1000;
    const toAsk: SessionRecord[] = [];
    for (const [i, id] of ids.entries()) {
      const raw = raws[i];
      if (raw === null || raw === undefined) continue; // ended between the two reads
      const record = decode(id, raw);
      const plan = planFor(record, {
        self: s.instanceId,
        now,
        idleMs,
        heldHere: s.context.sessions.lookup(id).state === 'active',
        lastActiveAt: lastActive.get(id),
      });
      if (plan.kind === 'leave') summary.left++;
      else if (plan.kind === 'ask') toAsk.push(record!);
      else if (record === undefined) {
        // Nothing the registry scripts can read either: the resync's release is all there is.
        s.context.logger.warn({ sessionId: id }, 'reconcile: unreadable registry record left to the resync');
        summary.failed++;
      } else if (await this.end(record, plan.reason, 'delete', plan.upstream)) summary.ended++;
      else summary.left++;
    }
    const verdicts = await this.askAll(toAsk, deadline);
    for (const record of toAsk) {
      const verdict = verdicts.get(record.id) ?? 'unanswered';
      const next = afterAnswer(verdict, record);
      if (next.kind === 'end') {
        if (await this.end(record, 'owner-lost', next.mode, false)) summary.ended++;
        else summary.left++;
      } else if (await this.adopt(record, lastActive.get(record.id))) {
        summary[next.outcome]++;
        if (next.outcome === 'failed')
          s.context.logger.warn(
            { sessionId: record.id },
            'reconcile: the upstream gave no answer about this session; kept as held',
          );
      } else if (await this.end(record, 'evicted', 'handoff', true)) summary.ended++;
    }
    summary.ms = Date.now() - started;
    for (const outcome of ['adopted', 'ended', 'failed'] as const) {
      if (summary[outcome] > 0) s.metrics.reconciled.inc({ outcome }, summary[outcome]);
    }
    s.context.logger.info(
      { ...summary },
      `reconciled the sessions held before a restart: adopted ${summary.adopted}, ended ${summary.ended}, failed ${summary.failed}`,
    );
    return summary;
  }

  /**
   * Asks the upstream about every record, `concurrency` at a time; the ones without an answer are
   * asked again (the upstream may be starting too) until the budget runs out.
   */
  private async askAll(
    records: readonly SessionRecord[],
    deadline: number,
  ): Promise<Map<string, UpstreamSessionVerdict>> {
    const verdicts = new Map<string, UpstreamSessionVerdict>();
    let pending = records;
    let pause = 100;
    const budget = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
    while (pending.length > 0 && !budget.aborted) {
      let next = 0;
      const worker = async () => {
        while (next < pending.length && !budget.aborted) {
          const record = pending[next++]!;
          verdicts.set(record.id, await this.ask(record, budget));
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.options.concurrency, pending.length) }, worker));
      pending = pending.filter((r) => (verdicts.get(r.id) ?? 'unanswered') === 'unanswered');
      if (pending.length === 0 || Date.now() + pause >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 1000);
    }
    return verdicts;
  }

  private async ask(record: SessionRecord, signal: AbortSignal): Promise<UpstreamSessionVerdict> {
    try {
      return await this.upstream.check({ id: record.id, path: record.upstreamPath }, signal);
    } catch {
      return 'unanswered';
    }
  }

  /**
   * The session held here again, as its earlier life held it: principal, tenant, creation time
   * (its lifetime still counts from then) and last activity (so is its idle time). Its slot and
   * quota places are the registry's already: the resync keeps them, it does not count them again.
   * False if the table has no room for it.
   */
  private async adopt(record: SessionRecord, lastActiveAt: number | undefined): Promise<boolean> {
    const s = this.s;
    const created = s.context.sessions.create(record.id, {
      ...(record.principal !== undefined ? { principal: record.principal } : {}),
      ...(record.tenant !== undefined ? { tenant: record.tenant } : {}),
      meta: record.upstreamPath !== undefined ? { mcpPath: record.upstreamPath } : {},
      createdAt: record.createdAt,
    });
    if (!created.ok) return created.reason === 'exists';
    const session = created.session;
    if (lastActiveAt !== undefined)
      session.lastActiveAt = Math.min(Date.now(), Math.max(session.createdAt, lastActiveAt));
    s.meta.set(record.id, { tenant: record.tenant, resumable: record.resumable });
    s.flushed.set(record.id, session.lastActiveAt);
    // A collaborative session's lock is only ever taken at its owner, and this agent has taken
    // none yet: a holder is the earlier life's, which would block every write for a lock TTL.
    if (s.context.policy.collaborative?.enabled) await s.redis.del(this.keys.lockHolder(record.id)).catch(() => {});
    return true;
  }

  /** Ends a record still this instance's (false if another instance took it meanwhile). */
  private async end(
    record: SessionRecord,
    reason: EndedReason,
    mode: 'delete' | 'handoff',
    upstream: boolean,
  ): Promise<boolean> {
    const result = await this.s.registry.end(record.id, { expectedOwner: this.s.instanceId, mode, reason });
    if (result.kind === 'not-owner') return false;
    if (upstream && !(mode === 'handoff' && record.resumable)) {
      await this.upstream.end({ id: record.id, path: record.upstreamPath }).catch(() => {});
    }
    return true;
  }
}

function decode(id: string, raw: string): SessionRecord | undefined {
  try {
    return decodeRecord(id, raw);
  } catch {
    return undefined;
  }
}
