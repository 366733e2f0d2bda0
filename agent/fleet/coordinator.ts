/**
 * `FleetCoordinator`: the agent's side of the fleet (`--redis`). It registers this instance with
 * a lease renewed by heartbeat, places new sessions (here, or on the instance with the most free
 * slots, within the fleet-wide quotas), tells the fronts where a session lives, re-homes sessions
 * whose owner died, hands sessions off while draining, runs the janitor (registry sweep and
 * session-state cleanup) when it is the leader, and answers the admin API's inventory and kill
 * switch.
 *
 * The request path for a session held here issues no Redis command: `route()` answers from the
 * local session table, and activity is written back in one batched command per flush interval.
 *
 * When Redis is unreachable (see docs/fleet.md, "Redis outages"): sessions held here go on as
 * before; requests for sessions held elsewhere are routed by the cached owner or the id's signed
 * owner hint; new sessions get STORE_UNAVAILABLE (503, Retry-After) — or, with `policy.failOpen`,
 * are placed here. ioredis reconnects by itself; on reconnect the instance registers again and
 * re-registers what it holds (a restarted Redis comes back empty).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { AgentError, sessionEndedError } from '../core/errors.js';
import type { EndReason, Lookup, Session } from '../core/sessions.js';
import { type FleetKeys, fleetKeys } from './keys.js';
import { JANITOR_RESOURCE, LeaderLease } from './leader.js';
import { FenceGate, RedisLock } from './lock.js';
import { createFleetMetrics, type FleetMetrics, type FleetOutcome } from './metrics.js';
import { OwnerHints } from './owner-hint.js';
import { enforceQuotas, quotaError } from './quotas.js';
import { ChannelHub, connectWithin, createFleetRedis, isReplicated } from './redis.js';
import {
  type EndedReason,
  FleetRegistry,
  type InstanceView,
  type LocalSessionState,
  type SelfMode,
  type SessionRecord,
} from './registry.js';
import { cleanSessionState, type StateCleanupReport } from './state-cleanup.js';
import type {
  Coordinator,
  FleetContext,
  FleetInstanceSummary,
  FleetSessionInfo,
  HopRoute,
  NewSession,
  OpenOptions,
  Placement,
  PlacementTicket,
  Route,
  SessionFilter,
  TerminateHandler,
  TerminateResult,
} from './types.js';

export interface FleetCoordinatorOptions {
  /** @default context.config.redisUrl */
  redisUrl?: string;
  /** The fleet's name, part of the key prefix. @default 'default' */
  fleet?: string;
  /** Overrides the whole key prefix. */
  prefix?: string;
  /** How long an instance counts as alive after its last heartbeat. @default 10000 */
  leaseMs?: number;
  /** @default leaseMs / 3 */
  heartbeatMs?: number;
  /** How often activity (last active times) is written back. @default 2000 */
  activityFlushMs?: number;
  /** How long a reserved slot waits for its session to be opened. @default 60000 */
  reservationTtlMs?: number;
  /** How long a front may take to resume an adopted session before it is abandoned. @default 30000 */
  adoptTimeoutMs?: number;
  /** How long a remote owner is trusted without asking Redis again. @default 5000 */
  remoteCacheMs?: number;
  /** @default 10000 */
  remoteCacheSize?: number;
  /** @default 1000 */
  commandTimeoutMs?: number;
  /** How long `start()` waits for Redis before carrying on without it. @default 2000 */
  startTimeoutMs?: number;
  /** How often the janitor leader sweeps the registry. @default 5000 */
  sweepIntervalMs?: number;
  /** How long past its lease a dead instance keeps its sessions before the sweep hands them off. @default 2 × leaseMs */
  deadGraceMs?: number;
  /** Retry-After for a full fleet. @default 5 */
  fullRetryAfterSeconds?: number;
  /** Retry-After while Redis is away. @default 2 */
  unavailableRetryAfterSeconds?: number;
  /** How long the kill switch waits for the owner to confirm. @default 5000 */
  terminateTimeoutMs?: number;
  /** Owner-hint keys (`SESSIONFLEET_FLEET_KEY`); without them a random key is shared through Redis. */
  hintKeys?: Buffer[];
  /** Whether sessions survive their owner. @default policy.sharedSessionState */
  resumable?: boolean;
  /** Hand resumable sessions off as soon as their in-flight work ends while draining. @default true */
  handOffWhileDraining?: boolean;
  /** Session-state cleanup on the shared volume, by the janitor leader. */
  stateCleanup?: { dir: string; intervalMs?: number; maxAgeSeconds?: number };
  /** A lock waiter that stops renewing its place is dropped after this long. @default 3000 */
  lockWaiterTtlMs?: number;
  /** How long the janitor lead survives its leader's death. @default max(3 × sweepIntervalMs, 3000) */
  janitorTtlMs?: number;
  /**
   * How many ended session ids the fleet remembers at most (each for one session lifetime after
   * its end), so that a client-chosen id that ended is not taken for a new session. @default 100000
   */
  endedIdsCap?: number;
}

interface LocalMeta {
  tenant: string | undefined;
  resumable: boolean;
}

interface RemoteOwner {
  instanceId: string;
  address: string;
  at: number;
}

interface Adoption {
  record: SessionRecord;
  done: Promise<void>;
  finish: () => void;
  timer: NodeJS.Timeout;
}

/** An end not written to Redis yet (it was away): how, and why (remembered with the id). */
interface PendingEnd {
  mode: 'delete' | 'handoff';
  reason: EndedReason | undefined;
}

type AdminMessage =
  | { op: 'terminate'; id: string; requestId: string; replyTo: string }
  | { op: 'terminate-result'; requestId: string; ok: boolean };

/** Ends after which a resumable session lives on elsewhere: its state was not deleted. */
const HAND_OFF_REASONS: ReadonlySet<EndReason> = new Set(['drained', 'evicted', 'upstream-closed']);
/** Ends after which the session is certainly gone, so `route()` need not ask Redis. */
const FINAL_REASONS: ReadonlySet<EndReason> = new Set(['deleted', 'expired-lifetime', 'expired-idle']);

const randomId = () => randomBytes(12).toString('base64url');
const NOT_OWNER: HopRoute = { kind: 'not-owner' };

export class FleetCoordinator implements Coordinator {
  readonly mode = 'redis' as const;
  readonly instanceId: string;
  readonly keys: FleetKeys;
  readonly registry: FleetRegistry;
  readonly lock: RedisLock;
  readonly fence = new FenceGate();
  readonly redis: Redis;
  readonly metrics: FleetMetrics;

  private readonly subscriber: Redis;
  private readonly hub: ChannelHub;
  private readonly leader: LeaderLease;
  private readonly o: Required<
    Omit<FleetCoordinatorOptions, 'redisUrl' | 'fleet' | 'prefix' | 'hintKeys' | 'stateCleanup'>
  >;
  private hintCodec: OwnerHints | undefined;
  /** Keys shared through Redis (newest first), when none is configured. */
  private sharedHintKeys: string[] = [];
  private registered = false;
  private connecting: Promise<void> | undefined;
  private draining = false;
  private stopped = false;
  private view = new Map<string, InstanceView>();
  /** Redis clock minus ours, from the last heartbeat. */
  private clockOffset = 0;
  private readonly remote = new Map<string, RemoteOwner>();
  private readonly meta = new Map<string, LocalMeta>();
  private readonly flushed = new Map<string, number>();
  private readonly pendingEnds = new Map<string, PendingEnd>();
  /** Ends on their way to Redis; `stop()` lets them land. */
  private readonly endsInFlight = new Set<Promise<void>>();
  /** Local ends that must not touch the registry (another instance owns the session). */
  private readonly quietEnds = new Set<string>();
  private readonly adoptions = new Map<string, Adoption>();
  private readonly replies = new Map<string, (ok: boolean) => void>();
  private terminator: TerminateHandler;
  private timers: NodeJS.Timeout[] = [];
  private lastCleanupAt = 0;
  private heartbeatPausedUntil = 0;
  private offAdminChannel: (() => void) | undefined;
  /** The last state-cleanup report, for tests and the admin view. */
  lastCleanup: StateCleanupReport | undefined;

  constructor(
    private readonly context: FleetContext,
    private readonly options: FleetCoordinatorOptions = {},
  ) {
    const url = options.redisUrl ?? context.config.redisUrl;
    if (!url) throw new Error('FleetCoordinator needs a Redis URL (--redis)');
    this.instanceId = context.config.instanceId;
    const leaseMs = options.leaseMs ?? 10_000;
    this.o = {
      leaseMs,
      heartbeatMs: options.heartbeatMs ?? Math.max(50, Math.floor(leaseMs / 3)),
      activityFlushMs: options.activityFlushMs ?? 2000,
      reservationTtlMs: options.reservationTtlMs ?? 60_000,
      adoptTimeoutMs: options.adoptTimeoutMs ?? 30_000,
      remoteCacheMs: options.remoteCacheMs ?? 5000,
      remoteCacheSize: options.remoteCacheSize ?? 10_000,
      commandTimeoutMs: options.commandTimeoutMs ?? 1000,
      startTimeoutMs: options.startTimeoutMs ?? 2000,
      sweepIntervalMs: options.sweepIntervalMs ?? 5000,
      deadGraceMs: options.deadGraceMs ?? 2 * leaseMs,
      fullRetryAfterSeconds: options.fullRetryAfterSeconds ?? 5,
      unavailableRetryAfterSeconds: options.unavailableRetryAfterSeconds ?? 2,
      terminateTimeoutMs: options.terminateTimeoutMs ?? 5000,
      resumable: options.resumable ?? context.policy.sharedSessionState,
      handOffWhileDraining: options.handOffWhileDraining ?? true,
      lockWaiterTtlMs: options.lockWaiterTtlMs ?? 3000,
      // The janitor lock outlives a few missed sweeps, so a busy leader is not replaced needlessly.
      janitorTtlMs: options.janitorTtlMs ?? Math.max(3 * (options.sweepIntervalMs ?? 5000), 3000),
      endedIdsCap: options.endedIdsCap ?? 100_000,
    };
    this.keys = fleetKeys({ fleet: options.fleet, prefix: options.prefix });
    const name = `sessionfleet:${this.instanceId}`;
    this.redis = createFleetRedis(url, { name, commandTimeoutMs: this.o.commandTimeoutMs });
    this.subscriber = createFleetRedis(url, { name: `${name}:sub`, commandTimeoutMs: this.o.commandTimeoutMs });
    this.hub = new ChannelHub(this.subscriber);
    this.registry = new FleetRegistry(this.redis, this.keys);
    // An ended id is remembered as long as a single agent remembers it: one session lifetime.
    this.registry.memory = {
      ttlMs: context.policy.sessionLifetimeSeconds * 1000,
      cap: Math.max(0, Math.floor(this.o.endedIdsCap)),
    };
    const collaborative = context.policy.collaborative;
    this.lock = new RedisLock({
      redis: this.redis,
      keys: this.keys,
      hub: this.hub,
      ttlMs: (collaborative?.lockTtlSeconds ?? 30) * 1000,
      waitMs: (collaborative?.lockWaitSeconds ?? 10) * 1000,
      waiterTtlMs: this.o.lockWaiterTtlMs,
      // Behind Sentinel a failover promotes a replica: a grant counts once one replica has it.
      replicasToAck: isReplicated(url) ? 1 : 0,
    });
    this.leader = new LeaderLease(this.lock, JANITOR_RESOURCE, this.o.janitorTtlMs);
    if (options.hintKeys?.length) this.hintCodec = new OwnerHints(options.hintKeys);
    this.metrics = createFleetMetrics(context.metrics.registry);
    this.terminator = async (id) => context.sessions.end(id, 'terminated');

    context.onSessionEnd((session, reason) => this.sessionEnded(session, reason));
    this.redis.on('ready', () => void this.connected());
    this.redis.on('close', () => this.disconnected());
  }

  get available(): boolean {
    return this.registered && this.redis.status === 'ready';
  }

  get hints(): OwnerHints | undefined {
    return this.hintCodec;
  }

  // ---- life cycle -------------------------------------------------------------------------

  async start(): Promise<void> {
    const [up] = await Promise.all([
      connectWithin(this.redis, this.o.startTimeoutMs),
      connectWithin(this.subscriber, this.o.startTimeoutMs),
    ]);
    if (up) await this.connected();
    else
      this.context.logger.warn(
        { failOpen: this.context.policy.failOpen },
        'fleet store (Redis) unreachable at start; serving local sessions and retrying in the background',
      );
    this.offAdminChannel = (
      await this.hub.listen(this.keys.instanceChannel(this.instanceId), (m) => void this.adminMessage(m))
    ).off;
    const every = (ms: number, fn: () => Promise<void>) => {
      const timer = setInterval(() => {
        fn().catch((error: unknown) => this.context.logger.debug({ err: error }, 'fleet timer task failed'));
      }, ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(this.o.heartbeatMs, () => this.heartbeat());
    every(this.o.activityFlushMs, () => this.flush());
    every(this.o.sweepIntervalMs, () => this.janitor());
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.offAdminChannel?.();
    for (const adoption of this.adoptions.values()) {
      clearTimeout(adoption.timer);
      adoption.finish();
    }
    await Promise.all(this.endsInFlight);
    if (this.redis.status === 'ready') {
      await this.flush().catch(() => {});
      await this.flushPendingEnds().catch(() => {});
      await this.leader.resign().catch(() => {});
      // Leave the fleet at once rather than when the lease runs out: placement stops counting this
      // instance, and whatever it still holds is re-homed (or ended) on its next request.
      await this.redis.zadd(this.keys.leases, 'XX', 0, this.instanceId).catch(() => {});
    }
    this.registered = false;
    this.metrics.redisUp.set(0);
    this.redis.disconnect();
    this.subscriber.disconnect();
  }

  /**
   * Simulates sudden death for tests: stops heartbeats and closes the connections without
   * releasing anything, exactly what the rest of the fleet sees when a process is killed.
   */
  crashForTests(): void {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.registered = false;
    this.redis.disconnect();
    this.subscriber.disconnect();
  }

  /** Heartbeat and activity flush now, instead of at the next tick (tests, and before shutdown). */
  async refresh(): Promise<void> {
    await this.heartbeat();
    await this.flush();
  }

  /** Simulates a stalled process for tests: no heartbeat for `ms`, everything else running. */
  async pauseHeartbeatForTests(ms: number): Promise<void> {
    this.heartbeatPausedUntil = Date.now() + ms;
    await new Promise((r) => setTimeout(r, ms));
  }

  async startDraining(): Promise<void> {
    this.draining = true;
    this.context.sessions.startDraining();
    await this.heartbeat().catch(() => {});
    await this.flush().catch(() => {});
  }

  onTerminate(handler: TerminateHandler): void {
    this.terminator = handler;
  }

  mintSessionId(): string {
    return this.hintCodec?.mint(this.instanceId) ?? randomBytes(16).toString('base64url');
  }

  /** (Re)registration after Redis became reachable: heartbeat, pending ends, then resync. */
  private connected(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.connecting ??= (async () => {
      try {
        await this.heartbeatNow();
        await this.ensureHintKey();
        await this.flushPendingEnds();
        await this.resync();
        this.registered = true;
        this.metrics.redisUp.set(1);
        this.context.logger.info({ instances: this.view.size }, 'registered with the fleet');
      } catch (error) {
        this.context.logger.warn({ err: error }, 'fleet registration failed; retrying on the next heartbeat');
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  private disconnected(): void {
    if (this.registered) this.context.logger.warn('fleet store (Redis) connection lost');
    this.registered = false;
    this.metrics.redisUp.set(0);
  }

  /** Slots offered to placement: none while draining or while every request slot is taken (SPEC §4). */
  private capacityOffered(): number {
    if (this.draining || this.context.sessions.isDraining || this.saturated()) return 0;
    return this.context.sessions.capacity;
  }

  private async heartbeatNow(): Promise<{ lapsed: boolean }> {
    const result = await this.registry.heartbeat({
      instanceId: this.instanceId,
      leaseMs: this.o.leaseMs,
      capacity: this.capacityOffered(),
      address: this.context.config.advertise.href,
      info: {
        inFlight: this.context.load.inFlight,
        sessions: this.context.sessions.size,
        draining: this.draining || this.context.sessions.isDraining,
        saturated: this.saturated(),
      },
    });
    this.clockOffset = result.now - Date.now();
    this.view = new Map(result.instances.map((i) => [i.id, i]));
    this.metrics.instances.set(result.instances.length);
    this.context.metrics.placementDemand.set(result.demand);
    const lapsed = result.previousDeadline === undefined || result.previousDeadline <= result.now;
    return { lapsed };
  }

  private async heartbeat(): Promise<void> {
    if (this.stopped || this.redis.status !== 'ready' || Date.now() < this.heartbeatPausedUntil) return;
    if (!this.registered) return this.connected();
    const { lapsed } = await this.heartbeatNow();
    // Ends that failed while Redis flickered between two heartbeats.
    if (this.pendingEnds.size > 0) await this.flushPendingEnds();
    // A lapsed lease means the fleet may have treated this instance as dead meanwhile.
    if (lapsed) await this.resync();
  }

  /**
   * Without a configured key the fleet shares one through Redis: the first agent stores a random
   * key, the others read it. A Redis that restarted empty gets this agent's key back (SET NX), so
   * ids minted before the restart stay verifiable; if another agent's key won the race, this agent
   * signs with that one from now on and still verifies with every key it has used.
   */
  private async ensureHintKey(): Promise<void> {
    if (this.options.hintKeys?.length) return;
    const mine = this.sharedHintKeys[0] ?? randomBytes(32).toString('base64url');
    await this.redis.set(this.keys.hintKey, mine, 'NX');
    const current = await this.redis.get(this.keys.hintKey);
    if (!current || current === this.sharedHintKeys[0]) return;
    this.sharedHintKeys = [current, ...this.sharedHintKeys.filter((k) => k !== current)].slice(0, 4);
    this.hintCodec = new OwnerHints(this.sharedHintKeys.map((k) => Buffer.from(k, 'utf8')));
  }

  private localState(session: Session): LocalSessionState {
    const meta = this.meta.get(session.id);
    return {
      id: session.id,
      principal: session.principal,
      tenant: meta?.tenant,
      createdAt: session.createdAt,
      expiresAt: session.expiresAt,
      resumable: meta?.resumable ?? this.o.resumable,
      lastActiveAt: session.lastActiveAt,
    };
  }

  /** Makes the registry agree with the local table; drops local copies another instance took over. */
  private async resync(): Promise<void> {
    const held = this.context.sessions.list().filter((s) => !this.adoptions.has(s.id));
    const result = await this.registry.resync(
      this.instanceId,
      held.map((s) => this.localState(s)),
    );
    this.metrics.ownershipConflicts.inc(result.conflicts.length);
    for (const { id, owner } of result.conflicts) {
      this.context.logger.warn({ sessionId: id, owner }, 'session was re-homed while this instance was cut off');
      this.quietEnds.add(id);
      this.context.sessions.end(id, 'terminated');
      this.remember(id, owner, this.view.get(owner)?.address ?? '');
    }
    for (const s of held) this.flushed.set(s.id, s.lastActiveAt);
    if (result.registered > 0 || result.released > 0 || result.conflicts.length > 0)
      this.context.logger.info({ ...result, conflicts: result.conflicts.length }, 'fleet registry resynced');
  }

  private async flushPendingEnds(): Promise<void> {
    for (const [id, { mode, reason }] of [...this.pendingEnds]) {
      await this.registry.end(id, { expectedOwner: this.instanceId, mode, reason });
      this.pendingEnds.delete(id);
    }
  }

  /**
   * Writes activity back: one command for every session active since the last flush, none if
   * nothing happened. Runs every `activityFlushMs`; callable before a shutdown.
   */
  async flush(): Promise<void> {
    if (this.draining && this.o.handOffWhileDraining) this.handOffIdle();
    if (!this.available) return;
    const now = Date.now();
    const entries: Array<[string, number]> = [];
    for (const s of this.context.sessions.list()) {
      if (!this.meta.has(s.id)) continue;
      const at = s.inFlight > 0 || s.openStreams > 0 ? now : s.lastActiveAt;
      if (at > (this.flushed.get(s.id) ?? 0)) entries.push([s.id, at]);
    }
    if (entries.length === 0) return;
    await this.registry.touch(entries);
    for (const [id, at] of entries) this.flushed.set(id, at);
  }

  /** While draining, resumable sessions leave as soon as nothing of theirs is in flight. */
  private handOffIdle(): void {
    for (const s of this.context.sessions.list()) {
      const resumable = this.meta.get(s.id)?.resumable ?? this.o.resumable;
      if (resumable && s.inFlight === 0 && s.openStreams === 0) this.context.sessions.end(s.id, 'drained');
    }
  }

  private async janitor(): Promise<void> {
    if (!this.available || this.stopped) return;
    if (!(await this.leader.tryLead())) return;
    const swept = await this.registry.sweep({
      idleMs: this.context.policy.sessionIdleTimeoutSeconds * 1000,
      graceMs: this.o.deadGraceMs,
      budget: 200,
    });
    if (swept.expired + swept.handedOff + swept.dropped + swept.instancesRemoved > 0)
      this.context.logger.info(swept, 'fleet registry swept');
    const cleanup = this.options.stateCleanup;
    if (cleanup && Date.now() - this.lastCleanupAt >= (cleanup.intervalMs ?? 60_000)) {
      this.lastCleanupAt = Date.now();
      await this.cleanStateNow();
    }
  }

  /** One session-state cleanup run (the janitor calls it; exposed for tests and operators). */
  async cleanStateNow(): Promise<StateCleanupReport | undefined> {
    const cleanup = this.options.stateCleanup;
    if (!cleanup) return undefined;
    const report = await cleanSessionState({
      dir: cleanup.dir,
      maxAgeMs: (cleanup.maxAgeSeconds ?? this.context.policy.sessionLifetimeSeconds) * 1000,
      isLive: async (ids) => {
        const live = await this.registry.known(ids);
        for (const id of ids) if (this.context.sessions.get(id)) live.add(id);
        return live;
      },
    });
    this.lastCleanup = report;
    if (report.removed.length > 0)
      this.context.logger.info({ removed: report.removed.length, dir: cleanup.dir }, 'session state cleaned up');
    return report;
  }

  /** Leads the janitor now if nobody does (tests use it to make a run deterministic). */
  async sweepNow(): Promise<boolean> {
    if (!(await this.leader.tryLead())) return false;
    await this.registry.sweep({
      idleMs: this.context.policy.sessionIdleTimeoutSeconds * 1000,
      graceMs: this.o.deadGraceMs,
      budget: 1000,
    });
    return true;
  }

  // ---- placement --------------------------------------------------------------------------

  private count(outcome: FleetOutcome): void {
    this.metrics.outcomes.inc({ outcome });
  }

  private unavailableError(cause?: unknown): AgentError {
    return new AgentError('STORE_UNAVAILABLE', 'the fleet store (Redis) is unreachable', {
      retryAfterSeconds: this.o.unavailableRetryAfterSeconds,
      details: cause instanceof Error ? { cause: cause.message } : {},
    });
  }

  private fullError(canGrow: boolean, running: number): AgentError {
    const max = this.context.policy.maxInstances;
    const message = canGrow
      ? `no instance had a free session slot within placementWaitSeconds (${this.context.policy.placementWaitSeconds}); the fleet is scaling out`
      : `every instance is full and the fleet is at maxInstances (${running} of ${max} running)`;
    return new AgentError('SESSION_LIMIT_REACHED', message, {
      retryAfterSeconds: this.o.fullRetryAfterSeconds,
      details: { fleetAtMax: !canGrow },
    });
  }

  private saturated(): boolean {
    return this.context.load.inFlight >= this.context.load.limit;
  }

  private selfMode(): SelfMode {
    const sessions = this.context.sessions;
    if (this.draining || sessions.isDraining || this.saturated()) return 'closed';
    return this.context.policy.evictionPolicy === 'lru' && sessions.canAccept() ? 'evict' : 'open';
  }

  async place(request: NewSession = {}, options: { signal?: AbortSignal } = {}): Promise<Placement> {
    const { principal, tenant, sessionId } = request;
    if (!this.available) return this.placeWithoutRedis(request);
    const policy = this.context.policy;
    const waitMs = policy.placementWaitSeconds * 1000;
    const deadline = Date.now() + waitMs;
    const waiterId = randomId();
    let waited = false;
    let pause = 50;
    for (;;) {
      const reservationId = randomId();
      let result: Awaited<ReturnType<FleetRegistry['place']>>;
      try {
        result = await this.registry.place({
          self: this.instanceId,
          principal,
          tenant,
          principalLimit: policy.sessionsPerPrincipal,
          tenantLimit: policy.sessionsPerTenant,
          maxInstances: policy.maxInstances,
          reservationId,
          reservationTtlMs: this.o.reservationTtlMs,
          selfMode: this.selfMode(),
          waiterId: waitMs > 0 ? waiterId : '',
          waitMs,
          sessionId,
        });
      } catch (error) {
        return this.placeWithoutRedis(request, error);
      }
      if (result.kind === 'placed') {
        if (waited) this.count('waited_for_capacity');
        if (result.instanceId === this.instanceId) {
          this.count('placed_local');
          return { kind: 'local', reservationId, principal, tenant };
        }
        this.count('placed_remote');
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
        if (waited) await this.registry.removeWaiter(waiterId).catch(() => {});
        this.count('rejected_ended');
        throw sessionEndedError(result.reason);
      }
      if (result.kind === 'quota') {
        this.count('rejected_quota');
        const who = (result.quota === 'principal' ? principal : tenant) ?? '';
        throw quotaError(this.context.policy, result.quota, who, result.held, tenant);
      }
      // Full. Below maxInstances the fleet can grow: the demand is recorded (the autoscaler reads
      // it) and the session waits, a bounded time, for an instance to come up or a slot to free.
      const remaining = deadline - Date.now();
      if (result.canGrow && remaining > 0 && !options.signal?.aborted) {
        waited = true;
        this.context.metrics.placementDemand.set(result.demand);
        await new Promise((r) => setTimeout(r, Math.min(pause, remaining)));
        pause = Math.min(pause * 2, 500);
        continue;
      }
      if (waited) await this.registry.removeWaiter(waiterId).catch(() => {});
      this.count('rejected_full');
      throw this.fullError(result.canGrow, result.running);
    }
  }

  /** Redis is away: 503, or with `failOpen` the session stays here (quotas checked locally only). */
  private placeWithoutRedis(request: NewSession, cause?: unknown): Placement {
    const policy = this.context.policy;
    if (!policy.failOpen) {
      this.count('rejected_unavailable');
      throw this.unavailableError(cause);
    }
    if (this.draining) throw new AgentError('DRAINING', 'this instance is draining', { retryAfterSeconds: 1 });
    // Without Redis only this instance's memory of ended ids counts (as the quotas, below).
    const found = request.sessionId !== undefined ? this.context.sessions.lookup(request.sessionId) : undefined;
    if (found?.state === 'ended') {
      this.count('rejected_ended');
      throw sessionEndedError(found.reason);
    }
    enforceQuotas(
      policy,
      request,
      this.context.sessions.list().map((s) => ({ principal: s.principal, tenant: this.meta.get(s.id)?.tenant })),
    );
    if (!this.context.sessions.canAccept()) {
      this.count('rejected_full');
      throw new AgentError('SESSION_LIMIT_REACHED', 'this instance is full and the fleet store is unreachable', {
        retryAfterSeconds: this.o.unavailableRetryAfterSeconds,
      });
    }
    this.count('placed_fail_open');
    return { kind: 'local', reservationId: undefined, principal: request.principal, tenant: request.tenant };
  }

  async open(ticket: PlacementTicket, sessionId: string, options: OpenOptions = {}): Promise<Session> {
    if ((ticket as Placement).kind === 'remote')
      throw new Error('open() takes a placement on this instance; forward a remote placement to its owner');
    const principal = options.principal ?? ticket.principal;
    const tenant = options.tenant ?? ticket.tenant;
    const created = this.context.sessions.create(sessionId, {
      ...(principal !== undefined ? { principal } : {}),
      ...(tenant !== undefined ? { tenant } : {}),
      ...(options.meta ? { meta: options.meta } : {}),
    });
    if (!created.ok) {
      await this.cancel(ticket);
      if (created.reason === 'exists') {
        const held = this.context.sessions.get(sessionId);
        throw new OwnershipConflictError(sessionId, this.instanceId, {
          principal: held?.principal,
          tenant: held?.tenant ?? this.meta.get(sessionId)?.tenant,
        });
      }
      if (created.reason === 'draining')
        throw new AgentError('DRAINING', 'this instance is draining', { retryAfterSeconds: 1 });
      throw new AgentError('SESSION_LIMIT_REACHED', 'this instance has no free session slot', {
        retryAfterSeconds: this.o.fullRetryAfterSeconds,
      });
    }
    const session = created.session;
    this.meta.set(sessionId, { tenant, resumable: this.o.resumable });
    this.flushed.set(sessionId, session.lastActiveAt);
    // Without Redis (fail-open) the session is registered by the resync when Redis returns.
    if (!this.available) return session;
    let result: Awaited<ReturnType<FleetRegistry['open']>>;
    try {
      result = await this.registry.open({
        id: sessionId,
        owner: this.instanceId,
        reservationId: ticket.reservationId,
        principal,
        tenant,
        createdAt: session.createdAt,
        expiresAt: session.expiresAt,
        resumable: this.o.resumable,
      });
    } catch (error) {
      this.context.logger.warn({ err: error, sessionId }, 'session not registered yet; the next resync will');
      this.registered = false;
      return session;
    }
    if (!result.ok && result.ended !== undefined) {
      // The client-chosen id ended between placement and now: its earlier session's end stands,
      // and this instance remembers it as the fleet does. An id whose owner was lost has no end
      // reason a session table knows: it is dropped here unremembered, so that this agent, like
      // every other, answers it from the fleet's memory (as an unknown id).
      if (result.ended === 'owner-lost') {
        this.context.sessions.discard(sessionId);
      } else {
        this.quietEnds.add(sessionId);
        this.context.sessions.end(sessionId, result.ended);
      }
      this.count('rejected_ended');
      throw sessionEndedError(result.ended);
    }
    if (!result.ok) {
      this.quietEnds.add(sessionId);
      this.context.sessions.end(sessionId, 'terminated');
      throw new OwnershipConflictError(sessionId, result.owner, { principal: result.principal, tenant: result.tenant });
    }
    return session;
  }

  async cancel(ticket: PlacementTicket): Promise<void> {
    if (!ticket.reservationId || this.redis.status !== 'ready') return;
    await this.registry.cancel(ticket.reservationId).catch(() => {});
  }

  // ---- routing ----------------------------------------------------------------------------

  private instanceAlive(id: string): boolean {
    const view = this.view.get(id);
    return view !== undefined && view.leaseDeadline > Date.now() + this.clockOffset;
  }

  private remember(id: string, instanceId: string, address: string): void {
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

  /**
   * The table's word on `sessionId` once an adoption of it already running here (another request
   * resuming it right now) has finished: wait for it rather than resume the session twice.
   */
  private async afterAdoption(sessionId: string, found: Lookup): Promise<Lookup> {
    const adoption = this.adoptions.get(sessionId);
    if (!adoption) return found;
    await adoption.done;
    return this.context.sessions.lookup(sessionId);
  }

  async route(sessionId: string): Promise<Route> {
    let found = this.context.sessions.lookup(sessionId);
    if (found.state === 'active') {
      this.count('routed_local');
      return { kind: 'local', session: found.session };
    }
    found = await this.afterAdoption(sessionId, found);
    if (found.state === 'active') return { kind: 'local', session: found.session };
    if (found.state === 'ended' && FINAL_REASONS.has(found.reason)) {
      this.count('gone');
      return { kind: 'gone', reason: found.reason };
    }
    const cached = this.remote.get(sessionId);
    if (cached && Date.now() - cached.at < this.o.remoteCacheMs && this.instanceAlive(cached.instanceId)) {
      this.count('routed_remote');
      return { kind: 'remote', instanceId: cached.instanceId, advertise: cached.address, via: 'cache' };
    }
    if (!this.available) return this.routeWithoutRedis(sessionId, cached);
    let result: Awaited<ReturnType<FleetRegistry['resolve']>>;
    try {
      result = await this.registry.resolve(sessionId, {
        self: this.instanceId,
        selfMode: this.selfMode(),
        idleMs: this.context.policy.sessionIdleTimeoutSeconds * 1000,
        maxInstances: this.context.policy.maxInstances,
      });
    } catch (error) {
      this.context.logger.debug({ err: error, sessionId }, 'registry lookup failed');
      return this.routeWithoutRedis(sessionId, cached, error);
    }
    switch (result.kind) {
      case 'owned':
        this.remember(sessionId, result.instanceId, result.address);
        this.count('routed_remote');
        return { kind: 'remote', instanceId: result.instanceId, advertise: result.address, via: 'registry' };
      case 'moved':
        this.count('rehomed');
        if (result.instanceId === this.instanceId) return this.beginAdoption(result.record);
        this.remember(sessionId, result.instanceId, result.address);
        return { kind: 'remote', instanceId: result.instanceId, advertise: result.address, via: 'registry' };
      case 'gone':
        this.remote.delete(sessionId);
        this.count('gone');
        return { kind: 'gone', reason: result.reason };
      case 'unknown':
        this.remote.delete(sessionId);
        this.count('gone');
        return { kind: 'gone', reason: 'unknown' };
      case 'full':
        this.count('rejected_full');
        throw this.fullError(result.canGrow, this.view.size);
    }
  }

  async routeHop(sessionId: string): Promise<HopRoute> {
    let found = this.context.sessions.lookup(sessionId);
    if (found.state !== 'active') found = await this.afterAdoption(sessionId, found);
    if (found.state === 'active') return { kind: 'local', session: found.session };
    // Only a session the registry gives to this instance is taken on here: one handed off, or
    // whose owner is alive or unknown to the registry, is left to the forwarding agent's routing.
    if (!this.available || (found.state === 'ended' && FINAL_REASONS.has(found.reason))) return NOT_OWNER;
    let record: SessionRecord | undefined;
    try {
      record = await this.registry.get(sessionId);
    } catch (error) {
      this.context.logger.debug({ err: error, sessionId }, 'registry lookup for a hop failed');
      return NOT_OWNER;
    }
    if (record?.owner !== this.instanceId) return NOT_OWNER;
    // The registry's word beats an owner cached here; route() resolves it as lost by this
    // instance, which stays the owner if it has room (adopt).
    this.forget(sessionId);
    const route = await this.route(sessionId);
    return route.kind === 'local' || route.kind === 'adopt' ? route : NOT_OWNER;
  }

  /**
   * Redis is away: the cached owner (however old), else the id's signed owner hint, resolved to an
   * address through the last fleet view. A session with neither cannot be routed: 503.
   */
  private routeWithoutRedis(sessionId: string, cached: RemoteOwner | undefined, cause?: unknown): Route {
    if (cached) {
      this.count('routed_remote');
      return { kind: 'remote', instanceId: cached.instanceId, advertise: cached.address, via: 'cache' };
    }
    const hint = this.hintCodec?.read(sessionId);
    const owner = hint && hint.instanceId !== this.instanceId ? this.view.get(hint.instanceId) : undefined;
    if (owner) {
      this.count('routed_by_hint');
      return { kind: 'remote', instanceId: owner.id, advertise: owner.address, via: 'hint' };
    }
    this.count('routed_unavailable');
    throw this.unavailableError(cause);
  }

  private beginAdoption(record: SessionRecord): Route {
    let finish = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    // A front that never calls adopt() or abandon() must not pin the session here forever.
    const timer = setTimeout(() => void this.abandon(record.id), this.o.adoptTimeoutMs);
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
    const adoption = this.adoptions.get(sessionId);
    if (!adoption) throw new Error(`adopt(${JSON.stringify(sessionId)}) must follow a route() that returned adopt`);
    const { record } = adoption;
    const created = this.context.sessions.create(sessionId, {
      ...(record.principal !== undefined ? { principal: record.principal } : {}),
      ...(record.tenant ? { tenant: record.tenant } : {}),
      ...(options.meta ? { meta: options.meta } : {}),
      createdAt: record.createdAt,
    });
    if (!created.ok) {
      this.endAdoption(sessionId);
      // Give it back so another instance can resume it.
      await this.registry.end(sessionId, { expectedOwner: this.instanceId, mode: 'handoff' }).catch(() => {});
      throw new AgentError('SESSION_LIMIT_REACHED', 'this instance has no free session slot', {
        retryAfterSeconds: this.o.fullRetryAfterSeconds,
      });
    }
    this.meta.set(sessionId, { tenant: record.tenant, resumable: record.resumable });
    this.flushed.set(sessionId, 0);
    this.endAdoption(sessionId);
    return created.session;
  }

  async abandon(sessionId: string): Promise<void> {
    this.endAdoption(sessionId);
    if (this.context.sessions.get(sessionId)) {
      this.context.sessions.end(sessionId, 'deleted');
      return;
    }
    // Its owner is gone and it could not be resumed here: it ended with its owner.
    const end: PendingEnd = { mode: 'delete', reason: 'owner-lost' };
    await this.registry.end(sessionId, { expectedOwner: this.instanceId, ...end }).catch(() => {
      this.pendingEnds.set(sessionId, end);
    });
  }

  private sessionEnded(session: Session, reason: EndReason): void {
    const meta = this.meta.get(session.id);
    this.meta.delete(session.id);
    this.flushed.delete(session.id);
    this.fence.forget(session.id);
    if (this.quietEnds.delete(session.id)) return;
    const resumable = meta?.resumable ?? this.o.resumable;
    // A handed-off session did not end; a detached one (Copilot) is resumed by design: neither id is
    // remembered as ended. Any other removed session's is, for one lifetime, fleet-wide.
    const end: PendingEnd = {
      mode: resumable && HAND_OFF_REASONS.has(reason) ? 'handoff' : 'delete',
      reason: reason === 'detached' ? undefined : reason,
    };
    if (!this.available) {
      this.pendingEnds.set(session.id, end);
      return;
    }
    const ending = this.registry
      .end(session.id, { expectedOwner: this.instanceId, ...end })
      .then(
        () => {},
        () => {
          this.pendingEnds.set(session.id, end);
        },
      )
      .finally(() => this.endsInFlight.delete(ending));
    this.endsInFlight.add(ending);
  }

  // ---- admin: inventory and kill switch ---------------------------------------------------

  private requireRedis(): void {
    if (this.redis.status !== 'ready') throw this.unavailableError();
  }

  private redisNow(): number {
    return Date.now() + this.clockOffset;
  }

  private describe(
    record: SessionRecord,
    lastActive: number | undefined,
    alive: (id: string) => boolean,
  ): FleetSessionInfo {
    const now = this.redisNow();
    const local = record.owner === this.instanceId ? this.context.sessions.get(record.id) : undefined;
    const last = local ? Math.max(local.lastActiveAt, lastActive ?? 0) : lastActive;
    const info: FleetSessionInfo = {
      id: record.id,
      owner: record.owner ?? null,
      ownerAlive: record.owner !== undefined && alive(record.owner),
      principal: record.principal ?? null,
      tenant: record.tenant ?? null,
      createdAt: new Date(record.createdAt).toISOString(),
      expiresAt: new Date(record.expiresAt).toISOString(),
      lastActiveAt: last !== undefined ? new Date(last).toISOString() : null,
      ageSeconds: Math.max(0, Math.floor((now - record.createdAt) / 1000)),
      idleSeconds: last !== undefined ? Math.max(0, Math.floor((now - last) / 1000)) : null,
      resumable: record.resumable,
    };
    if (local) {
      info.inFlight = local.inFlight;
      info.openStreams = local.openStreams;
    }
    return info;
  }

  private async aliveCheck(): Promise<(id: string) => boolean> {
    const instances = await this.registry.instances();
    const alive = new Set(instances.filter((i) => i.alive).map((i) => i.id));
    return (id) => alive.has(id);
  }

  async listSessions(filter: SessionFilter = {}): Promise<{ sessions: FleetSessionInfo[]; truncated: boolean }> {
    this.requireRedis();
    const limit = filter.limit ?? 1000;
    let records: SessionRecord[];
    let truncated = false;
    if (filter.instanceId !== undefined) {
      const ids = await this.registry.idsOf('instance', filter.instanceId, limit + 1);
      truncated = ids.length > limit;
      records = await this.registry.records(ids.slice(0, limit));
    } else if (filter.principal !== undefined || filter.tenant !== undefined) {
      const ids =
        filter.principal !== undefined
          ? await this.registry.idsOfPrincipal(filter.principal, filter.tenant, limit + 1)
          : await this.registry.idsOf('tenant', filter.tenant!, limit + 1);
      truncated = ids.length > limit;
      records = await this.registry.records(ids.slice(0, limit));
    } else {
      ({ records, truncated } = await this.registry.all(limit));
    }
    const now = this.redisNow();
    records = records.filter((r) => {
      if (filter.principal !== undefined && r.principal !== filter.principal) return false;
      if (filter.tenant !== undefined && r.tenant !== filter.tenant) return false;
      if (filter.instanceId !== undefined && r.owner !== filter.instanceId) return false;
      // Whole seconds, as shown in `ageSeconds`.
      const age = Math.floor((now - r.createdAt) / 1000);
      if (filter.minAgeSeconds !== undefined && age < filter.minAgeSeconds) return false;
      if (filter.maxAgeSeconds !== undefined && age > filter.maxAgeSeconds) return false;
      return true;
    });
    const [lastActive, alive] = await Promise.all([
      this.registry.lastActive(records.map((r) => r.id)),
      this.aliveCheck(),
    ]);
    const sessions = records
      .map((r) => this.describe(r, lastActive.get(r.id), alive))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    return { sessions, truncated };
  }

  async inspect(sessionId: string): Promise<FleetSessionInfo | undefined> {
    this.requireRedis();
    const record = await this.registry.get(sessionId);
    if (!record) return undefined;
    const [lastActive, alive] = await Promise.all([this.registry.lastActive([sessionId]), this.aliveCheck()]);
    return this.describe(record, lastActive.get(sessionId), alive);
  }

  async listInstances(): Promise<FleetInstanceSummary[]> {
    this.requireRedis();
    const now = this.redisNow();
    return (await this.registry.instances()).map((i) => ({
      id: i.id,
      advertise: i.address,
      alive: i.alive,
      self: i.id === this.instanceId,
      capacity: i.capacity,
      used: i.used,
      free: Math.max(0, i.capacity - i.used),
      draining: i.info.draining === true,
      inFlight: typeof i.info.inFlight === 'number' ? i.info.inFlight : null,
      leaseExpiresInMs: i.leaseDeadline - now,
    }));
  }

  /**
   * The kill switch. Held here: the front ends it properly. Held by a live instance: that
   * instance's agent is asked over its channel and ends it properly. Owner gone or silent: the
   * record is ended in the registry (a silent owner drops its copy at its next resync).
   */
  async terminate(sessionId: string): Promise<TerminateResult> {
    if (this.context.sessions.get(sessionId)) {
      const ok = await this.terminator(sessionId);
      return { terminated: ok, via: 'local', owner: this.instanceId };
    }
    this.requireRedis();
    const record = await this.registry.get(sessionId);
    if (!record) return { terminated: false, via: 'none', owner: null };
    const owner = record.owner ?? null;
    if (owner !== null && owner !== this.instanceId) {
      const confirmed = await this.askOwner(owner, sessionId);
      if (confirmed) return { terminated: true, via: 'owner', owner };
    }
    const ended = await this.registry.end(sessionId, { mode: 'delete', reason: 'terminated' });
    return { terminated: ended.kind === 'ended', via: 'registry', owner };
  }

  /** True if the owner ended it; false if it answered that it does not hold it, or nobody answered. */
  private async askOwner(owner: string, sessionId: string): Promise<boolean> {
    const requestId = randomUUID();
    const answer = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.replies.delete(requestId);
        resolve(false);
      }, this.o.terminateTimeoutMs);
      this.replies.set(requestId, (ok) => {
        clearTimeout(timer);
        this.replies.delete(requestId);
        resolve(ok);
      });
    });
    const message: AdminMessage = { op: 'terminate', id: sessionId, requestId, replyTo: this.instanceId };
    const receivers = await this.redis.publish(this.keys.instanceChannel(owner), JSON.stringify(message));
    if (receivers === 0) {
      this.replies.get(requestId)?.(false);
      return false;
    }
    return answer;
  }

  private async adminMessage(text: string): Promise<void> {
    let message: AdminMessage;
    try {
      message = JSON.parse(text) as AdminMessage;
    } catch {
      return;
    }
    if (message.op === 'terminate-result') {
      this.replies.get(message.requestId)?.(message.ok === true);
      return;
    }
    if (message.op !== 'terminate') return;
    let ok = false;
    if (this.context.sessions.get(message.id)) {
      try {
        ok = await this.terminator(message.id);
      } catch (error) {
        this.context.logger.error({ err: error, sessionId: message.id }, 'terminate failed');
      }
    }
    const reply: AdminMessage = { op: 'terminate-result', requestId: message.requestId, ok };
    await this.redis.publish(this.keys.instanceChannel(message.replyTo), JSON.stringify(reply)).catch(() => {});
  }
}

/**
 * The session id is already registered to another instance (or already open here). `holder` is
 * who the registered session belongs to, as recorded when it was opened, so a front can tell a
 * client whose own session it is from a client naming someone else's.
 */
export class OwnershipConflictError extends Error {
  constructor(
    readonly sessionId: string,
    readonly owner: string | undefined,
    readonly holder: { readonly principal: string | undefined; readonly tenant: string | undefined },
  ) {
    super(`session ${JSON.stringify(sessionId)} is already held by ${owner ?? 'another instance'}`);
    this.name = 'OwnershipConflictError';
  }
}
