/**
 * `FleetCoordinator`'s options, their defaults (resolved once, here), and the two things a caller
 * may inject: the Redis connections (the transport) and the timers (the scheduler). Production
 * uses the defaults; tests inject their own to kill an agent or stall its heartbeat the way a real
 * fault would, without hooks inside the production classes.
 */
import type { Redis } from 'ioredis';
import type { RedisEndpoint } from '../../policy/redis-url.js';
import { createFleetRedis } from './redis.js';
import type { FleetContext } from './types.js';

/** The coordinator's periodic tasks, by name, so an injected scheduler can tell them apart. */
export type FleetTask = 'heartbeat' | 'activity-flush' | 'janitor';

/** Runs the coordinator's periodic tasks. */
export interface FleetScheduler {
  /** Calls `run` every `ms` until the returned function is called. */
  every(task: FleetTask, ms: number, run: () => void): () => void;
}

/** Plain `setInterval`, unref'd so the timers never keep a process alive. */
export const intervalScheduler: FleetScheduler = {
  every(_task, ms, run) {
    const timer = setInterval(run, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
};

/** Opens one of the coordinator's two Redis connections: commands, or pub/sub. */
export type FleetConnect = (role: 'commands' | 'subscriber', name: string) => Redis;

export interface FleetCoordinatorOptions {
  /** The fleet store. @default context.config.redis */
  redis?: RedisEndpoint;
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
  /**
   * At start, how long the reconcile may spend asking the upstream about the sessions the registry
   * still gives this instance (ADR 0022); 0 turns it off (they are released, as before). @default 10000
   */
  reconcileMs?: number;
  /** How many of those questions are in flight at once. @default 16 */
  reconcileConcurrency?: number;
  /** The Redis connections. @default createFleetRedis(redis) with `commandTimeoutMs` */
  connect?: FleetConnect;
  /** The timers of the periodic tasks. @default intervalScheduler */
  scheduler?: FleetScheduler;
}

/** The options every part of the coordinator reads, with their defaults filled in. */
export type ResolvedFleetOptions = Required<
  Omit<FleetCoordinatorOptions, 'redis' | 'fleet' | 'prefix' | 'hintKeys' | 'stateCleanup' | 'connect' | 'scheduler'>
>;

export function resolveFleetOptions(context: FleetContext, options: FleetCoordinatorOptions): ResolvedFleetOptions {
  const leaseMs = options.leaseMs ?? 10_000;
  return {
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
    reconcileMs: options.reconcileMs ?? 10_000,
    reconcileConcurrency: Math.max(1, options.reconcileConcurrency ?? 16),
  };
}

/** The default transport: ioredis connections that fail fast rather than queue (`redis.ts`). */
export function redisConnect(endpoint: RedisEndpoint, commandTimeoutMs: number): FleetConnect {
  return (_role, name) => createFleetRedis(endpoint, { name, commandTimeoutMs });
}
