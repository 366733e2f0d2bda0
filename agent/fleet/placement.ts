/**
 * New sessions: where each goes (here, or the live instance with the most free slots, within the
 * fleet-wide quotas; waiting a bounded time while the fleet scales out), and registering the
 * session once the owner's front has created it upstream. Without Redis, a new session gets
 * STORE_UNAVAILABLE, or with `policy.failOpen` stays here under local quotas.
 */
import { randomBytes } from 'node:crypto';
import { AgentError, sessionEndedError } from '../core/errors.js';
import type { Session } from '../core/sessions.js';
import type { InstanceLease } from './instance-lease.js';
import { enforceQuotas, quotaError } from './quotas.js';
import type { OpenResult, PlaceResult } from './registry.js';
import type { FleetState } from './state.js';
import {
  type NewSession,
  type OpenOptions,
  OwnershipConflictError,
  type Placement,
  type PlacementTicket,
} from './types.js';

const randomId = () => randomBytes(12).toString('base64url');

// `open()`'s conflict answer is part of the coordinator contract: it lives in types.ts, where fronts
// may import it from (the layering rule), and is re-exported here for the fleet's own importers.
export { OwnershipConflictError };

export class FleetPlacement {
  constructor(
    private readonly s: FleetState,
    private readonly lease: InstanceLease,
  ) {}

  async place(request: NewSession = {}, options: { signal?: AbortSignal } = {}): Promise<Placement> {
    const s = this.s;
    const { principal, tenant, sessionId } = request;
    if (!s.available) return this.placeWithoutRedis(request);
    const policy = s.context.policy;
    const waitMs = policy.placementWaitSeconds * 1000;
    const deadline = Date.now() + waitMs;
    const waiterId = randomId();
    let waited = false;
    let pause = 50;
    for (;;) {
      const reservationId = randomId();
      let result: PlaceResult;
      try {
        result = await s.registry.place({
          self: s.instanceId,
          principal,
          tenant,
          principalLimit: policy.sessionsPerPrincipal,
          tenantLimit: policy.sessionsPerTenant,
          maxInstances: policy.maxInstances,
          reservationId,
          reservationTtlMs: s.o.reservationTtlMs,
          selfMode: s.selfMode(),
          waiterId: waitMs > 0 ? waiterId : '',
          waitMs,
          sessionId,
        });
      } catch (error) {
        return this.placeWithoutRedis(request, error);
      }
      if (result.kind === 'placed') {
        if (waited) s.count('waited_for_capacity');
        if (result.instanceId === s.instanceId) {
          s.count('placed_local');
          return { kind: 'local', reservationId, principal, tenant };
        }
        s.count('placed_remote');
        return {
          kind: 'remote',
          reservationId,
          instanceId: result.instanceId,
          advertise: result.address,
          principal,
          tenant,
        };
      }
      if (result.kind === 'ended') {
        if (waited) await s.registry.removeWaiter(waiterId).catch(() => {});
        s.count('rejected_ended');
        throw sessionEndedError(result.reason);
      }
      if (result.kind === 'quota') {
        s.count('rejected_quota');
        const who = (result.quota === 'principal' ? principal : tenant) ?? '';
        throw quotaError(policy, result.quota, who, result.held, tenant);
      }
      // Full. Below maxInstances the fleet can grow: the demand is recorded (the autoscaler reads
      // it) and the session waits, a bounded time, for an instance to come up or a slot to free.
      const remaining = deadline - Date.now();
      if (result.canGrow && remaining > 0 && !options.signal?.aborted) {
        waited = true;
        s.context.metrics.placementDemand.set(result.demand);
        await new Promise((r) => setTimeout(r, Math.min(pause, remaining)));
        pause = Math.min(pause * 2, 500);
        continue;
      }
      if (waited) await s.registry.removeWaiter(waiterId).catch(() => {});
      s.count('rejected_full');
      throw s.fullError(result.canGrow, result.running);
    }
  }

  /** Redis is away: 503, or with `failOpen` the session stays here (quotas checked locally only). */
  private placeWithoutRedis(request: NewSession, cause?: unknown): Placement {
    const s = this.s;
    const policy = s.context.policy;
    if (!policy.failOpen) {
      s.count('rejected_unavailable');
      throw s.unavailableError(cause);
    }
    if (s.draining) throw new AgentError('DRAINING', 'this instance is draining', { retryAfterSeconds: 1 });
    if (s.upstreamDown) {
      s.count('rejected_unavailable');
      throw new AgentError(
        'UPSTREAM_UNAVAILABLE',
        "this instance's upstream is not answering and, without the fleet store, no peer can be chosen",
        { retryAfterSeconds: s.o.unavailableRetryAfterSeconds },
      );
    }
    // Without Redis only this instance's memory of ended ids counts (as the quotas, below).
    const found = request.sessionId !== undefined ? s.context.sessions.lookup(request.sessionId) : undefined;
    if (found?.state === 'ended') {
      s.count('rejected_ended');
      throw sessionEndedError(found.reason);
    }
    enforceQuotas(
      policy,
      request,
      s.context.sessions
        .list()
        .map((session) => ({ principal: session.principal, tenant: s.meta.get(session.id)?.tenant })),
    );
    if (!s.context.sessions.canAccept()) {
      s.count('rejected_full');
      throw new AgentError('SESSION_LIMIT_REACHED', 'this instance is full and the fleet store is unreachable', {
        retryAfterSeconds: s.o.unavailableRetryAfterSeconds,
      });
    }
    s.count('placed_fail_open');
    return { kind: 'local', reservationId: undefined, principal: request.principal, tenant: request.tenant };
  }

  async open(ticket: PlacementTicket, sessionId: string, options: OpenOptions = {}): Promise<Session> {
    const s = this.s;
    if ((ticket as Placement).kind === 'remote')
      throw new Error('open() takes a placement on this instance; forward a remote placement to its owner');
    const principal = options.principal ?? ticket.principal;
    const tenant = options.tenant ?? ticket.tenant;
    const created = s.context.sessions.create(sessionId, {
      ...(principal !== undefined ? { principal } : {}),
      ...(tenant !== undefined ? { tenant } : {}),
      ...(options.meta ? { meta: options.meta } : {}),
    });
    if (!created.ok) {
      await this.cancel(ticket);
      if (created.reason === 'exists') {
        const held = s.context.sessions.get(sessionId);
        throw new OwnershipConflictError(sessionId, s.instanceId, {
          principal: held?.principal,
          tenant: held?.tenant ?? s.meta.get(sessionId)?.tenant,
        });
      }
      if (created.reason === 'draining')
        throw new AgentError('DRAINING', 'this instance is draining', { retryAfterSeconds: 1 });
      throw new AgentError('SESSION_LIMIT_REACHED', 'this instance has no free session slot', {
        retryAfterSeconds: s.o.fullRetryAfterSeconds,
      });
    }
    const session = created.session;
    s.meta.set(sessionId, { tenant, resumable: s.o.resumable });
    s.flushed.set(sessionId, session.lastActiveAt);
    // Without Redis (fail-open) the session is registered by the resync when Redis returns.
    if (!s.available) return session;
    let result: OpenResult;
    try {
      result = await s.registry.open({
        id: sessionId,
        owner: s.instanceId,
        reservationId: ticket.reservationId,
        principal,
        tenant,
        createdAt: session.createdAt,
        expiresAt: session.expiresAt,
        resumable: s.o.resumable,
        upstreamPath: typeof options.meta?.mcpPath === 'string' ? options.meta.mcpPath : undefined,
      });
    } catch (error) {
      s.context.logger.warn({ err: error, sessionId }, 'session not registered yet; the next resync will');
      s.registered = false;
      return session;
    }
    if (!result.ok && result.ended !== undefined) {
      // The client-chosen id ended between placement and now: its earlier session's end stands,
      // and this instance remembers it as the fleet does. An id whose owner was lost has no end
      // reason a session table knows: it is dropped here unremembered, so that this agent, like
      // every other, answers it from the fleet's memory (as an unknown id).
      if (result.ended === 'owner-lost') s.context.sessions.discard(sessionId);
      else this.lease.endQuietly(sessionId, result.ended);
      s.count('rejected_ended');
      throw sessionEndedError(result.ended);
    }
    if (!result.ok) {
      this.lease.endQuietly(sessionId, 'terminated');
      throw new OwnershipConflictError(sessionId, result.owner, { principal: result.principal, tenant: result.tenant });
    }
    return session;
  }

  async cancel(ticket: PlacementTicket): Promise<void> {
    if (!ticket.reservationId || this.s.redis.status !== 'ready') return;
    await this.s.registry.cancel(ticket.reservationId).catch(() => {});
  }
}
