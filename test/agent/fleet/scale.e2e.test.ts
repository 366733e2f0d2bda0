/**
 * Costs that do not grow with the fleet (ADR 0021), on a redis-server of this file's own (its
 * command counters must see this file's commands only). Simulated instances are the real registry
 * scripts called through `FleetRegistry`, with no agent around them:
 * - a placement reads a handful of keys however many instances there are, and chooses exactly as
 *   the rules say (a seeded property against a model of them: self first, most free slots, the
 *   smallest id on a tie, draining, full and dead instances never, eviction as a last resort);
 * - a heartbeat answers only what changed in the membership since the agent's version;
 * - an agent of the earlier version (which writes only the old keys) in the fleet is seen and
 *   placed on as before, and its goodbye is heard.
 */
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetKeys } from '../../../agent/fleet/keys.js';
import { FleetRegistry, type HeartbeatResult, type SelfMode } from '../../../agent/fleet/registry.js';
import { type RedisServer, startRedisServer } from '../../helpers/redis-server.js';
import { uniqueFleet } from './helpers.js';

let server: RedisServer;
let redis: Redis;

beforeAll(async () => {
  server = await startRedisServer();
  redis = new Redis(server.url);
});
afterAll(async () => {
  await redis.quit();
  await server.stop();
});

const address = (id: string) => `http://${id}:8080`;

/** A fleet of simulated instances on this file's Redis. */
function simFleet() {
  const keys = fleetKeys({ fleet: uniqueFleet() });
  const registry = new FleetRegistry(redis, keys);
  const known = new Map<string, { epoch: string; version: number }>();
  let serial = 0;
  return {
    keys,
    registry,
    async heartbeat(id: string, capacity: number): Promise<HeartbeatResult> {
      const result = await registry.heartbeat({
        instanceId: id,
        leaseMs: 60_000,
        capacity,
        address: address(id),
        info: {},
        known: known.get(id),
      });
      known.set(id, { epoch: result.epoch, version: result.version });
      return result;
    },
    /** Registers `count` sessions on `owner` (as its front does after creating them); returns their ids. */
    async fill(owner: string, count: number): Promise<string[]> {
      const ids: string[] = [];
      for (let i = 0; i < count; i++) {
        const id = `s-${serial++}`;
        ids.push(id);
        const result = await registry.open({
          id,
          owner,
          reservationId: undefined,
          principal: undefined,
          tenant: undefined,
          createdAt: Date.now(),
          expiresAt: Date.now() + 3600_000,
          resumable: false,
        });
        expect(result.ok).toBe(true);
      }
      return ids;
    },
    async place(self: string, selfMode: SelfMode = 'open') {
      return registry.place({
        self,
        principal: undefined,
        tenant: undefined,
        principalLimit: undefined,
        tenantLimit: undefined,
        maxInstances: 1000,
        reservationId: `r-${serial++}`,
        reservationTtlMs: 60_000,
        selfMode,
      });
    },
  };
}

/** How many times Redis ran `commands` (scripts' own calls included) while `work` ran. */
async function commandCalls(commands: string[], work: () => Promise<unknown>): Promise<number> {
  await redis.config('RESETSTAT');
  await work();
  const stats = await redis.info('commandstats');
  let calls = 0;
  for (const command of commands) {
    const m = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(stats);
    calls += Number(m?.[1] ?? 0);
  }
  return calls;
}

describe('fleet scale', () => {
  it('places a new session reading a handful of keys, not two per instance', async () => {
    const fleet = simFleet();
    const ids = Array.from({ length: 60 }, (_, i) => `i-${String(i).padStart(2, '0')}`);
    for (const id of ids) await fleet.heartbeat(id, 4);
    for (const id of ids) await fleet.fill(id, id === 'i-37' ? 1 : 3);
    let placed: Awaited<ReturnType<typeof fleet.place>> | undefined;
    // i-00 takes nothing itself: the choice is among the other 59 (i-37 has the most free slots).
    const reads = await commandCalls(['hget', 'zlexcount'], async () => {
      placed = await fleet.place('i-00', 'closed');
    });
    expect(placed).toMatchObject({ kind: 'placed', instanceId: 'i-37', address: address('i-37') });
    // The earlier version read the capacity and counted the slots of every live instance: 120 here.
    expect(reads).toBeLessThan(12);
  });

  it('chooses as the rules say: self first, most free slots, smallest id on a tie, never draining, full or dead', async () => {
    const instance = fc.record({
      capacity: fc.constantFrom(0, 1, 2, 3),
      used: fc.integer({ min: 0, max: 3 }),
      /** Sessions that end again before the placement (their slots must count as free). */
      ended: fc.integer({ min: 0, max: 3 }),
      alive: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(instance, { minLength: 1, maxLength: 6 }),
        fc.constantFrom<SelfMode>('open', 'evict', 'closed'),
        fc.boolean(),
        async (instances, selfMode, mixed) => {
          const fleet = simFleet();
          const ids = instances.map((_, i) => `n${i}`);
          // Sessions first (an instance takes them at full capacity), then the capacity it offers now.
          for (const [i, id] of ids.entries()) {
            await fleet.heartbeat(id, 3);
            const sessions = await fleet.fill(id, instances[i]!.used);
            await fleet.heartbeat(id, instances[i]!.capacity);
            for (const session of sessions.slice(0, instances[i]!.ended))
              await fleet.registry.end(session, { expectedOwner: id, mode: 'delete' });
          }
          for (const [i, id] of ids.entries()) if (!instances[i]!.alive) await fleet.registry.leave(id);
          // An agent of the earlier version, alive and full: placement then reads the whole fleet.
          if (mixed) {
            await redis.zadd(fleet.keys.leases, Date.now() + 60_000, 'old');
            await redis.hset(fleet.keys.capacity, 'old', 0);
          }
          const self = ids[0]!;
          const free = (i: number) =>
            instances[i]!.capacity - (instances[i]!.used - Math.min(instances[i]!.used, instances[i]!.ended));
          const live = (i: number) => instances[i]!.alive;
          const selfOffers = live(0) && selfMode !== 'closed' && instances[0]!.capacity > 0;
          let expected: string | undefined;
          if (selfOffers && free(0) > 0) expected = self;
          else {
            let best: number | undefined;
            for (let i = 1; i < ids.length; i++) {
              if (!live(i) || instances[i]!.capacity === 0 || free(i) <= 0) continue;
              if (best === undefined || free(i) > free(best)) best = i;
            }
            if (best !== undefined) expected = ids[best];
            else if (selfOffers && selfMode === 'evict') expected = self;
          }
          const result = await fleet.place(self, selfMode);
          if (expected === undefined) expect(result).toMatchObject({ kind: 'full' });
          else expect(result).toMatchObject({ kind: 'placed', instanceId: expected });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('answers a heartbeat with what changed in the membership since the agent’s version', async () => {
    const fleet = simFleet();
    const ids = Array.from({ length: 30 }, (_, i) => `m-${i}`);
    for (const id of ids) await fleet.heartbeat(id, 5);
    // The first agent to register saw the others join one by one; now everyone has caught up.
    const first = await fleet.heartbeat('m-0', 5);
    expect(first.mode).toBe('delta');
    expect(first.members.map((m) => m.id).sort()).toEqual(ids.slice(1).sort());
    expect(first.running).toBe(30);
    // Nothing changed: nothing comes back.
    expect(await fleet.heartbeat('m-0', 5)).toMatchObject({ mode: 'delta', members: [], running: 30 });
    expect((await fleet.heartbeat('m-1', 5)).members).toHaveLength(28);
    // One leaves, one comes back at another address: the others hear exactly that.
    await fleet.registry.leave('m-7');
    await fleet.registry.heartbeat({
      instanceId: 'm-9',
      leaseMs: 60_000,
      capacity: 5,
      address: 'http://new:1',
      info: {},
    });
    const after = await fleet.heartbeat('m-0', 5);
    expect(after).toMatchObject({ mode: 'delta', running: 29 });
    expect(after.members.sort((a, b) => a.id.localeCompare(b.id))).toEqual([
      { id: 'm-7', address: '', gone: true },
      { id: 'm-9', address: 'http://new:1', gone: false },
    ]);
    // An agent with no version (a restart) gets every live member.
    const fresh = await fleet.registry.heartbeat({
      instanceId: 'm-2',
      leaseMs: 60_000,
      capacity: 5,
      address: address('m-2'),
      info: {},
    });
    expect(fresh.mode).toBe('full');
    expect(fresh.members).toHaveLength(29);
    expect(fresh.members).toContainEqual({ id: 'm-9', address: 'http://new:1', gone: false });
  });

  it('hears of a member whose lease ran out at the first heartbeat after, from any agent', async () => {
    const fleet = simFleet();
    for (const id of ['a', 'b', 'c']) await fleet.heartbeat(id, 5);
    await fleet.heartbeat('a', 5);
    // b stops heartbeating and its lease runs out (a deadline a moment ahead, as a dying agent's).
    const [seconds, micros] = await redis.time();
    const soon = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) + 2;
    await redis.zadd(fleet.keys.leases, soon, 'b');
    await redis.zadd(fleet.keys.memberLeases, soon, 'b');
    await new Promise((resolve) => setTimeout(resolve, 20));
    await fleet.heartbeat('c', 5);
    expect((await fleet.heartbeat('a', 5)).members).toEqual([{ id: 'b', address: '', gone: true }]);
    // Heard once: the next heartbeats are empty again.
    expect((await fleet.heartbeat('a', 5)).members).toEqual([]);
  });

  it('sees an agent of the earlier version, places on it, and hears its goodbye', async () => {
    const fleet = simFleet();
    await fleet.heartbeat('new-a', 2);
    await fleet.fill('new-a', 2);
    // What the earlier version's heartbeat writes: the old keys only.
    await redis.zadd(fleet.keys.leases, Date.now() + 60_000, 'old-b');
    await redis.hset(fleet.keys.capacity, 'old-b', 3);
    await redis.hset(fleet.keys.address, 'old-b', address('old-b'));
    const mixed = await fleet.heartbeat('new-a', 2);
    expect(mixed.mode).toBe('full');
    expect(mixed.members.map((m) => m.id).sort()).toEqual(['new-a', 'old-b']);
    expect(await fleet.place('new-a')).toMatchObject({ kind: 'placed', instanceId: 'old-b' });
    // The earlier version leaves by setting its deadline to 0.
    await redis.zadd(fleet.keys.leases, 'XX', 0, 'old-b');
    const after = await fleet.heartbeat('new-a', 2);
    expect(after.running).toBe(1);
    // The mirror the mixed fleet's full answer left is kept; the one that left is taken out of it.
    expect(after).toMatchObject({ mode: 'delta', members: [{ id: 'old-b', address: '', gone: true }] });
    // With the fleet all of this version again, heartbeats are deltas.
    expect(await fleet.heartbeat('new-a', 2)).toMatchObject({ mode: 'delta', members: [] });
  });
});
