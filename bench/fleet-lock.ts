/**
 * Lock acquire/release cycles per second against one local Redis (a private redis-server started
 * here), next to a baseline of raw `SET NX PX` / `DEL` round trips on the same kind of connection,
 * printed as ratios. The lock does more per cycle (FIFO queue check, fencing counter, compare-and-
 * delete, turn notice), but the same number of round trips: two per cycle.
 *
 *   npx tsx bench/fleet-lock.ts [seconds per measurement, default 2]
 */
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { fleetKeys } from '../agent/fleet/keys.js';
import { RedisLock } from '../agent/fleet/lock.js';
import { ChannelHub, createFleetRedis } from '../agent/fleet/redis.js';
import { redisEndpoint } from '../policy/redis-url.js';
import { startRedisServer } from '../test/helpers/redis-server.js';

const seconds = Number(process.argv[2] ?? 2);
const server = await startRedisServer();
const redis = createFleetRedis(redisEndpoint(server.url), { name: 'bench-lock', commandTimeoutMs: 5000 });
const subscriber = createFleetRedis(redisEndpoint(server.url), { name: 'bench-lock:sub', commandTimeoutMs: 5000 });
await Promise.all([redis.connect(), subscriber.connect()]);
const keys = fleetKeys({ fleet: 'bench' });
const lock = new RedisLock({ redis, keys, hub: new ChannelHub(subscriber), ttlMs: 30_000, waitMs: 60_000 });

/** Runs `cycle` in `parallel` loops for the duration; returns cycles per second. */
async function measure(parallel: number, cycle: (loop: number) => Promise<void>): Promise<number> {
  for (let i = 0; i < 200; i++) await cycle(0); // warm up (script cache, JIT)
  let done = 0;
  const until = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async (_, loop) => {
      while (performance.now() < until) {
        await cycle(loop);
        done++;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

const value = () => randomBytes(12).toString('base64url');
const rawCycle = (resource: string) => async () => {
  await redis.set(`${keys.prefix}raw:${resource}`, value(), 'PX', 30_000, 'NX');
  await redis.del(`${keys.prefix}raw:${resource}`);
};
const lockCycle = (resource: string) => async () => {
  const lease = await lock.acquire(resource);
  await lease.release();
};

const rows: Array<[string, number, number]> = [];
for (const parallel of [1, 16]) {
  const raw = await measure(parallel, (loop) => rawCycle(`r${loop}`)());
  const ours = await measure(parallel, (loop) => lockCycle(`s${loop}`)());
  rows.push([
    `${parallel} session${parallel > 1 ? 's' : ''}, ${parallel} loop${parallel > 1 ? 's' : ''} in parallel`,
    raw,
    ours,
  ]);
}
// Contended: 16 writers on one session, every cycle a FIFO hand-off through the queue and pub/sub.
const contended = await measure(16, () => lockCycle('hot')());
const rawContended = await measure(16, () => rawCycle('hot-raw')());

console.log(
  `redis-server ${server.url}, ${seconds} s per measurement, Node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'})\n`,
);
console.log('| workload | raw SET NX PX + DEL (cycles/s) | lock acquire + release (cycles/s) | lock / raw |');
console.log('| --- | ---: | ---: | ---: |');
for (const [name, raw, ours] of rows)
  console.log(`| ${name} | ${raw.toFixed(0)} | ${ours.toFixed(0)} | ${(ours / raw).toFixed(2)} |`);
console.log(
  `| 16 writers on one session (FIFO hand-offs; raw: no queue, most SETs fail) | ${rawContended.toFixed(0)} | ${contended.toFixed(0)} | ${(contended / rawContended).toFixed(2)} |`,
);
// One loop is bounded by the loopback round trip (two per cycle, for the raw baseline too); the
// target is the lock service's throughput, i.e. sessions locked and released concurrently.
const concurrent = rows[1]![2];
console.log(
  `\ntarget ≥ 5,000 cycles/s (16 sessions in parallel): ${concurrent.toFixed(0)} → ${concurrent >= 5000 ? 'met' : 'NOT met'}`,
);

redis.disconnect();
subscriber.disconnect();
await server.stop();
