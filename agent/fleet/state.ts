/**
 * What the parts of the Redis coordinator share: this instance's standing in the fleet
 * (registered, draining, stopped), the fleet view from the last heartbeat, the owners of remote
 * sessions it has looked up, the fleet facts about the sessions it holds, and the small judgements
 * every part makes the same way (is Redis usable, can this instance take a session, which error).
 * One object, so that the lease, placement, routing, janitor and admin parts read one truth.
 */
import type { Redis } from 'ioredis';
import { AgentError } from '../core/errors.js';
import type { FleetMetrics, FleetOutcome, StoreState } from './metrics.js';
import type { ResolvedFleetOptions } from './options.js';
import type { FleetMember, FleetRegistry, HeartbeatResult, SelfMode } from './registry.js';
import type { FleetContext } from './types.js';

/** Fleet facts about a session held here that the session table does not keep. */
export interface LocalMeta {
  tenant: string | undefined;
  resumable: boolean;
}

export interface RemoteOwner {
  instanceId: string;
  address: string;
  at: number;
}

export class FleetState {
  readonly instanceId: string;
  registered = false;
  /** Set by `startDraining()` (the session table may also drain on its own). */
  draining = false;
  stopped = false;
  /**
   * Pending while the first registration reconciles the sessions of this instance's earlier life
   * (ADR 0022): a request for a session not held here waits for it rather than find it released.
   * Never rejects.
   */
  reconciling: Promise<void> | undefined;
  /**
   * The live members of the fleet, mirrored from the membership log: each heartbeat brings what
   * changed since the version held here (ADR 0021), not the whole fleet.
   */
  readonly view = new Map<string, FleetMember>();
  /** The membership epoch and version `view` mirrors; undefined: none yet (the next heartbeat sends all). */
  membership: { epoch: string; version: number } | undefined;
  /** The Redis clock at the heartbeat that last brought `view` up to date. */
  private viewAt = 0;
  /** Redis clock minus ours, from the last heartbeat. */
  clockOffset = 0;
  readonly remote = new Map<string, RemoteOwner>();
  readonly meta = new Map<string, LocalMeta>();
  /** The last active time written back per session held here. */
  readonly flushed = new Map<string, number>();
  private store: StoreState | undefined;
  /** A heartbeat or a lookup went unanswered and no heartbeat has been answered since. */
  private doubting = false;
  /** Until when, after the store answered again, other instances' lapsed leases are not trusted. */
  private doubtEndsAt = 0;

  constructor(
    readonly context: FleetContext,
    readonly o: ResolvedFleetOptions,
    readonly redis: Redis,
    readonly registry: FleetRegistry,
    readonly metrics: FleetMetrics,
  ) {
    this.instanceId = context.config.instanceId;
  }

  /** Registered and connected: the registry can be asked and written. */
  get available(): boolean {
    return this.registered && this.redis.status === 'ready';
  }

  /**
   * Records what this agent makes of the store. A change is logged once and counted
   * (`sessionfleet_fleet_store_transitions_total`), so an operator sees every interruption —
   * a closed connection and a stalled server alike — without a line per failed command.
   */
  storeIs(state: StoreState, why: string, detail: Record<string, unknown> = {}): void {
    this.metrics.redisUp.set(state === 'up' ? 1 : 0);
    if (state === this.store) return;
    const before = this.store;
    this.store = state;
    this.metrics.storeTransitions.inc({ to: state });
    const fields = { ...detail, store: state, was: before ?? 'unknown' };
    if (state === 'up') this.context.logger.info(fields, why);
    else this.context.logger.warn(fields, why);
  }

  /**
   * The store did not answer (a timed-out heartbeat or lookup, a closed connection). Until a
   * heartbeat is answered, requests with a known owner stop asking Redis (they would each wait a
   * command timeout); until one lease after that, a lapsed owner is not taken for a dead one.
   */
  doubt(): void {
    this.doubting = true;
  }

  /**
   * A heartbeat was answered: the doubt, if any, turns into caution for one lease — within which a
   * live owner renews its lease, or it is dead by definition — plus two heartbeat periods for this
   * agent's view of the fleet to show the renewal.
   */
  confirmed(): void {
    if (!this.doubting) return;
    this.doubting = false;
    this.doubtEndsAt = Date.now() + this.o.leaseMs + 2 * this.o.heartbeatMs;
  }

  /** True from an unanswered command until a heartbeat is answered again. */
  get doubtful(): boolean {
    return this.doubting;
  }

  /**
   * True while this agent cannot tell a dead instance from one cut off with it: from an unanswered
   * command until one lease (and two heartbeat periods) after the store answered again. A stalled Redis lets every lease lapse
   * at once, and the live owners renew theirs only as their next heartbeats land.
   */
  get unsure(): boolean {
    return this.doubting || Date.now() < this.doubtEndsAt;
  }

  count(outcome: FleetOutcome): void {
    this.metrics.outcomes.inc({ outcome });
  }

  unavailableError(cause?: unknown): AgentError {
    return new AgentError('STORE_UNAVAILABLE', 'the fleet store (Redis) is unreachable', {
      retryAfterSeconds: this.o.unavailableRetryAfterSeconds,
      details: cause instanceof Error ? { cause: cause.message } : {},
    });
  }

  fullError(canGrow: boolean, running: number): AgentError {
    const policy = this.context.policy;
    const message = canGrow
      ? `no instance had a free session slot within placementWaitSeconds (${policy.placementWaitSeconds}); the fleet is scaling out`
      : `every instance is full and the fleet is at maxInstances (${running} of ${policy.maxInstances} running)`;
    return new AgentError('SESSION_LIMIT_REACHED', message, {
      retryAfterSeconds: this.o.fullRetryAfterSeconds,
      details: { fleetAtMax: !canGrow },
    });
  }

  /**
   * The upstream probe says this instance's app is not answering: it offers no slot and places
   * every new session on a peer (its own sessions are still routed here; the front answers them).
   */
  get upstreamDown(): boolean {
    return this.context.upstreamHealth?.isUp === false;
  }

  saturated(): boolean {
    return this.context.load.inFlight >= this.context.load.limit;
  }

  isDraining(): boolean {
    return this.draining || this.context.sessions.isDraining;
  }

  /** What this instance can take right now (see `SelfMode`). */
  selfMode(): SelfMode {
    const sessions = this.context.sessions;
    if (this.isDraining() || this.saturated() || this.upstreamDown) return 'closed';
    // A full table that can give up an idle session (LRU, or one idle past evictIdleAfterSeconds).
    return sessions.canEvict() ? 'evict' : 'open';
  }

  redisNow(): number {
    return Date.now() + this.clockOffset;
  }

  /** Applies a heartbeat's membership: the whole of it, or what changed. */
  applyMembership(result: HeartbeatResult): void {
    if (result.mode === 'full') this.view.clear();
    for (const member of result.members) {
      if (member.gone) this.view.delete(member.id);
      else this.view.set(member.id, { id: member.id, address: member.address });
    }
    this.membership = { epoch: result.epoch, version: result.version };
    this.viewAt = result.now;
  }

  /**
   * A member, as of a heartbeat no older than one lease: a member's death is heard of at the first
   * heartbeat (of any agent) after its lease ran out, and reaches this mirror at this agent's next.
   */
  instanceAlive(id: string): boolean {
    return this.view.has(id) && this.redisNow() < this.viewAt + this.o.leaseMs;
  }

  isResumable(sessionId: string): boolean {
    return this.meta.get(sessionId)?.resumable ?? this.o.resumable;
  }

  remember(id: string, instanceId: string, address: string): void {
    this.remote.delete(id);
    this.remote.set(id, { instanceId, address, at: Date.now() });
    // A Map iterates in insertion order: the first key is the oldest.
    while (this.remote.size > this.o.remoteCacheSize) {
      const oldest = this.remote.keys().next();
      if (oldest.done) break;
      this.remote.delete(oldest.value);
    }
  }

  forget(sessionId: string): void {
    this.remote.delete(sessionId);
  }
}
