/**
 * Where a session lives, for a request that names it: here (no Redis command), on a live peer
 * (from the cache, the registry, or — Redis away — the id's signed owner hint), nowhere (gone), or
 * here from now on because its owner died (adopt). Adoption is a short promise this part keeps:
 * until the front calls `adopt()` or `abandon()`, or the adopt timeout fires, other requests for
 * the same session wait for it instead of resuming the session twice.
 */
import { AgentError } from '../core/errors.js';
import type { EndReason, Lookup, Session } from '../core/sessions.js';
import type { InstanceLease } from './instance-lease.js';
import type { ResolveResult, SessionRecord } from './registry.js';
import type { FleetState, RemoteOwner } from './state.js';
import type { HopRoute, Route } from './types.js';

interface Adoption {
  record: SessionRecord;
  done: Promise<void>;
  finish: () => void;
  timer: NodeJS.Timeout;
}

/** Ends after which the session is certainly gone, so `route()` need not ask Redis. */
const FINAL_REASONS: ReadonlySet<EndReason> = new Set(['deleted', 'expired-lifetime', 'expired-idle']);

const NOT_OWNER: HopRoute = { kind: 'not-owner' };

export class SessionLocator {
  private readonly adoptions = new Map<string, Adoption>();

  constructor(
    private readonly s: FleetState,
    private readonly lease: InstanceLease,
  ) {}

  isAdopting(sessionId: string): boolean {
    return this.adoptions.has(sessionId);
  }

  /** Releases every waiter on an adoption (the coordinator stops). */
  finishAll(): void {
    for (const adoption of this.adoptions.values()) {
      clearTimeout(adoption.timer);
      adoption.finish();
    }
  }

  /**
   * The table's word on `sessionId` once an adoption of it already running here (another request
   * resuming it right now) has finished: wait for it rather than resume the session twice.
   */
  private async afterAdoption(sessionId: string, found: Lookup): Promise<Lookup> {
    const adoption = this.adoptions.get(sessionId);
    if (!adoption) return found;
    await adoption.done;
    return this.s.context.sessions.lookup(sessionId);
  }

  /**
   * The table's word on `sessionId` once the reconcile after a restart (ADR 0022), if one is
   * running, is over: the session may be one of the earlier life, about to be adopted here.
   */
  private async afterReconcile(sessionId: string, found: Lookup): Promise<Lookup> {
    const reconciling = this.s.reconciling;
    if (!reconciling || found.state === 'active') return found;
    await reconciling;
    return this.s.context.sessions.lookup(sessionId);
  }

  async route(sessionId: string): Promise<Route> {
    const s = this.s;
    let found = s.context.sessions.lookup(sessionId);
    if (found.state === 'active') {
      s.count('routed_local');
      return { kind: 'local', session: found.session };
    }
    found = await this.afterAdoption(sessionId, found);
    found = await this.afterReconcile(sessionId, found);
    if (found.state === 'active') return { kind: 'local', session: found.session };
    if (found.state === 'ended' && FINAL_REASONS.has(found.reason)) {
      s.count('gone');
      return { kind: 'gone', reason: found.reason };
    }
    const cached = s.remote.get(sessionId);
    if (cached && Date.now() - cached.at < s.o.remoteCacheMs && s.instanceAlive(cached.instanceId)) {
      s.count('routed_remote');
      return { kind: 'remote', instanceId: cached.instanceId, advertise: cached.address, via: 'cache' };
    }
    if (!s.available) return this.routeWithoutRedis(sessionId, cached);
    // A store in doubt (a command just went unanswered): a request whose owner is known does not
    // wait a command timeout on it; the owner answers "not the owner" if the route is stale.
    if (s.doubtful) {
      const known = this.knownOwner(sessionId, cached);
      if (known) return known;
    }
    let result: ResolveResult;
    try {
      result = await s.registry.resolve(sessionId, {
        self: s.instanceId,
        selfMode: s.selfMode(),
        idleMs: s.context.policy.sessionIdleTimeoutSeconds * 1000,
        maxInstances: s.context.policy.maxInstances,
      });
    } catch (error) {
      s.context.logger.debug({ err: error, sessionId }, 'registry lookup failed');
      s.count('lookup_failed');
      s.doubt();
      return this.routeWithoutRedis(sessionId, cached, error);
    }
    switch (result.kind) {
      case 'owned':
        s.remember(sessionId, result.instanceId, result.address);
        s.count('routed_remote');
        return { kind: 'remote', instanceId: result.instanceId, advertise: result.address, via: 'registry' };
      case 'moved':
        s.count('rehomed');
        if (result.instanceId === s.instanceId) return this.beginAdoption(result.record);
        s.remember(sessionId, result.instanceId, result.address);
        return { kind: 'remote', instanceId: result.instanceId, advertise: result.address, via: 'registry' };
      case 'gone':
        s.forget(sessionId);
        s.count('gone');
        if (result.reason !== 'owner-lost') return { kind: 'gone', reason: result.reason };
        return this.goneButNamed(sessionId, 'owner-lost', cached);
      case 'unknown':
        s.forget(sessionId);
        s.count('gone');
        return this.goneButNamed(sessionId, 'unknown', cached);
      case 'full':
        s.count('rejected_full');
        throw s.fullError(result.canGrow, s.view.size);
    }
  }

  async routeHop(sessionId: string): Promise<HopRoute> {
    const s = this.s;
    let found = s.context.sessions.lookup(sessionId);
    if (found.state !== 'active') found = await this.afterAdoption(sessionId, found);
    if (found.state !== 'active') found = await this.afterReconcile(sessionId, found);
    if (found.state === 'active') return { kind: 'local', session: found.session };
    // Only a session the registry gives to this instance is taken on here: one handed off, or
    // whose owner is alive or unknown to the registry, is left to the forwarding agent's routing.
    // Nor while the store is in doubt: the forwarding agent routes once more rather than wait on it.
    if (!s.available || s.doubtful || (found.state === 'ended' && FINAL_REASONS.has(found.reason))) return NOT_OWNER;
    let record: SessionRecord | undefined;
    try {
      record = await s.registry.get(sessionId);
    } catch (error) {
      s.context.logger.debug({ err: error, sessionId }, 'registry lookup for a hop failed');
      s.doubt();
      return NOT_OWNER;
    }
    if (record?.owner !== s.instanceId) return NOT_OWNER;
    // The registry's word beats an owner cached here; route() resolves it as lost by this
    // instance, which stays the owner if it has room (adopt).
    s.forget(sessionId);
    const route = await this.route(sessionId);
    return route.kind === 'local' || route.kind === 'adopt' ? route : NOT_OWNER;
  }

  /** The cached owner (however old) or the id's hinted owner, if it is another live instance. */
  private knownOwner(sessionId: string, cached: RemoteOwner | undefined): Route | undefined {
    const s = this.s;
    if (cached && cached.instanceId !== s.instanceId && s.view.has(cached.instanceId)) {
      s.count('routed_remote');
      return { kind: 'remote', instanceId: cached.instanceId, advertise: cached.address, via: 'cache' };
    }
    const hint = this.lease.hints?.read(sessionId);
    const owner = hint && hint.instanceId !== s.instanceId ? s.view.get(hint.instanceId) : undefined;
    if (!owner) return undefined;
    s.count('routed_by_hint');
    return { kind: 'remote', instanceId: owner.id, advertise: owner.address, via: 'hint' };
  }

  /**
   * The registry has no live record (unknown, or ended as \`owner-lost\` by an agent that judged
   * the owner's lapsed lease), yet the cached owner or the id's signed hint names an instance: if
   * it is alive it may well hold the session — a stalled Redis lets every lease lapse at once —
   * and it decides; while this agent is unsure whether it is alive, nobody may say "not found".
   */
  private goneButNamed(sessionId: string, reason: 'unknown' | 'owner-lost', cached: RemoteOwner | undefined): Route {
    const s = this.s;
    // With no store interruption in the window, the registry's verdict stands: the script that gave
    // it read the owner's lease just now (an owner that died is not asked again; its forward just
    // failed, or its lease lapsed for real).
    if (!s.unsure) return { kind: 'gone', reason };
    const named = [cached?.instanceId, this.lease.hints?.read(sessionId)?.instanceId].filter(
      (id): id is string => id !== undefined && id !== s.instanceId,
    );
    const live = named.find((id) => s.instanceAlive(id));
    if (live !== undefined) {
      const address = s.view.get(live)?.address ?? cached?.address ?? '';
      return { kind: 'gone', reason, owner: { instanceId: live, advertise: address } };
    }
    return named.length > 0 ? { kind: 'gone', reason, unsure: true } : { kind: 'gone', reason };
  }

  /**
   * Redis is away: the cached owner (however old), else the id's signed owner hint, resolved to an
   * address through the last fleet view. A session with neither cannot be routed: 503.
   */
  private routeWithoutRedis(sessionId: string, cached: RemoteOwner | undefined, cause?: unknown): Route {
    const s = this.s;
    if (cached) {
      s.count('routed_remote');
      return { kind: 'remote', instanceId: cached.instanceId, advertise: cached.address, via: 'cache' };
    }
    const hint = this.lease.hints?.read(sessionId);
    const owner = hint && hint.instanceId !== s.instanceId ? s.view.get(hint.instanceId) : undefined;
    if (owner) {
      s.count('routed_by_hint');
      return { kind: 'remote', instanceId: owner.id, advertise: owner.address, via: 'hint' };
    }
    s.count('routed_unavailable');
    throw s.unavailableError(cause);
  }

  private beginAdoption(record: SessionRecord): Route {
    let finish = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    // A front that never calls adopt() or abandon() must not pin the session here forever.
    const timer = setTimeout(() => void this.abandon(record.id), this.s.o.adoptTimeoutMs);
    timer.unref();
    this.adoptions.set(record.id, { record, done, finish, timer });
    return { kind: 'adopt', record };
  }

  private endAdoption(sessionId: string): Adoption | undefined {
    const adoption = this.adoptions.get(sessionId);
    if (!adoption) return undefined;
    this.adoptions.delete(sessionId);
    clearTimeout(adoption.timer);
    adoption.finish();
    return adoption;
  }

  async adopt(sessionId: string, options: { meta?: Record<string, unknown> } = {}): Promise<Session> {
    const s = this.s;
    const adoption = this.adoptions.get(sessionId);
    if (!adoption) throw new Error(`adopt(${JSON.stringify(sessionId)}) must follow a route() that returned adopt`);
    const { record } = adoption;
    const created = s.context.sessions.create(sessionId, {
      ...(record.principal !== undefined ? { principal: record.principal } : {}),
      ...(record.tenant ? { tenant: record.tenant } : {}),
      ...(options.meta ? { meta: options.meta } : {}),
      createdAt: record.createdAt,
    });
    if (!created.ok) {
      this.endAdoption(sessionId);
      // Give it back so another instance can resume it.
      await s.registry.end(sessionId, { expectedOwner: s.instanceId, mode: 'handoff' }).catch(() => {});
      throw new AgentError('SESSION_LIMIT_REACHED', 'this instance has no free session slot', {
        retryAfterSeconds: s.o.fullRetryAfterSeconds,
      });
    }
    s.meta.set(sessionId, { tenant: record.tenant, resumable: record.resumable });
    s.flushed.set(sessionId, 0);
    this.endAdoption(sessionId);
    return created.session;
  }

  async abandon(sessionId: string): Promise<void> {
    this.endAdoption(sessionId);
    if (this.s.context.sessions.get(sessionId)) {
      this.s.context.sessions.end(sessionId, 'deleted');
      return;
    }
    // Its owner is gone and it could not be resumed here: it ended with its owner.
    await this.lease.endUnheld(sessionId, { mode: 'delete', reason: 'owner-lost' });
  }
}
