/**
 * The Lua scripts that keep the fleet's rules true across agents. Each rule that reads and then
 * writes more than one key (placement and quotas, ownership, re-homing, locks) is one script, so
 * Redis runs it atomically: no other agent's command lands between the check and the write.
 * They are registered with ioredis `defineCommand` (EVALSHA, falling back to EVAL after a Redis
 * restart empties the script cache).
 *
 * Every time comparison uses the Redis server's clock (`TIME`), never an agent's: agents whose
 * clocks drift still agree on whose lease has run out. (Redis 5+ replicates a script's effects,
 * not the script, so reading the clock is allowed.)
 *
 * All registry scripts take the same KEYS list (`registryKeys`), so the shared Lua helpers can
 * name any key; every key they touch is declared, which is what Redis Cluster requires.
 *
 * The Lua lives in `lua/` (shared helpers, session scripts, housekeeping, lock), one commented
 * step per rule; each script's reply is read by exactly one typed decoder in `replies.ts`.
 */
import type { Redis, Result } from 'ioredis';
import type { FleetKeys } from './keys.js';
import { BUDGET_SYNC } from './lua/budgets.js';
import { RESYNC, SCALE_GAUGE, SWEEP } from './lua/housekeeping.js';
import { LOCK_ACQUIRE, LOCK_EXTEND, LOCK_LEAVE, LOCK_RELEASE } from './lua/lock.js';
import { CANCEL, END, HEARTBEAT, LEAVE, OPEN, PLACE, RESOLVE } from './lua/sessions.js';

// Replies are typed `unknown` (or arrays of it) on purpose: only their decoder in `replies.ts` reads them.
declare module 'ioredis' {
  interface RedisCommander<Context> {
    sfHeartbeat(...args: Array<string | number>): Result<unknown[], Context>;
    sfLeave(...args: Array<string | number>): Result<unknown, Context>;
    sfPlace(...args: Array<string | number>): Result<unknown[], Context>;
    sfCancel(...args: Array<string | number>): Result<unknown, Context>;
    sfOpen(...args: Array<string | number>): Result<unknown[], Context>;
    sfEnd(...args: Array<string | number>): Result<unknown[], Context>;
    sfResolve(...args: Array<string | number>): Result<unknown[], Context>;
    sfResync(...args: Array<string | number>): Result<unknown[], Context>;
    sfSweep(...args: Array<string | number>): Result<unknown[], Context>;
    sfScaleGauge(...args: Array<string | number>): Result<unknown[], Context>;
    sfLockAcquire(...args: Array<string | number>): Result<unknown[], Context>;
    sfLockRelease(...args: Array<string | number>): Result<unknown, Context>;
    sfLockExtend(...args: Array<string | number>): Result<unknown, Context>;
    sfLockLeave(...args: Array<string | number>): Result<unknown, Context>;
    sfBudgetSync(...args: Array<string | number>): Result<unknown[], Context>;
  }
}

/** The KEYS of every registry script, in this order (the Lua `K` table in `lua/prelude.ts` mirrors it). */
export function registryKeys(keys: FleetKeys): string[] {
  return [
    keys.leases,
    keys.capacity,
    keys.address,
    keys.info,
    keys.sessions,
    keys.expiries,
    keys.activity,
    keys.byInstance,
    keys.byPrincipal,
    keys.byTenant,
    keys.reservations,
    keys.reservationExpiries,
    keys.demand,
    keys.ended,
    keys.endedReasons,
    keys.free,
    keys.memberLeases,
    keys.members,
    keys.memberChanges,
    keys.memberMeta,
  ];
}

const REGISTRY_KEY_COUNT = 20;

/** Registers every script on a connection (idempotent). */
export function defineFleetCommands(redis: Redis): void {
  if (typeof (redis as Partial<Redis>).sfPlace === 'function') return;
  const registry: Array<[string, string]> = [
    ['sfHeartbeat', HEARTBEAT],
    ['sfLeave', LEAVE],
    ['sfPlace', PLACE],
    ['sfCancel', CANCEL],
    ['sfOpen', OPEN],
    ['sfEnd', END],
    ['sfResolve', RESOLVE],
    ['sfResync', RESYNC],
    ['sfSweep', SWEEP],
  ];
  for (const [name, lua] of registry) redis.defineCommand(name, { numberOfKeys: REGISTRY_KEY_COUNT, lua });
  redis.defineCommand('sfScaleGauge', { numberOfKeys: 4, lua: SCALE_GAUGE });
  redis.defineCommand('sfLockAcquire', { numberOfKeys: 5, lua: LOCK_ACQUIRE });
  redis.defineCommand('sfLockRelease', { numberOfKeys: 3, lua: LOCK_RELEASE });
  redis.defineCommand('sfLockExtend', { numberOfKeys: 1, lua: LOCK_EXTEND });
  redis.defineCommand('sfLockLeave', { numberOfKeys: 3, lua: LOCK_LEAVE });
  redis.defineCommand('sfBudgetSync', { numberOfKeys: 2, lua: BUDGET_SYNC });
}
