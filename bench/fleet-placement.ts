/**
 * Placements per second: three agents (coordinators, each with its own Redis connections) of one
 * fleet on a private redis-server, placing new sessions (place: choose + reserve, with quotas)
 * and opening them on the chosen instance (open: register). Baseline: the same number of round
 * trips as plain HSETs on the same kind of connection, printed as a ratio.
 *
 *   npx tsx bench/fleet-placement.ts [sessions per measurement, default 3000]
 */
import { cpus } from 'node:os';
import { FleetCoordinator } from '../agent/fleet/coordinator.js';
import type { Placement } from '../agent/fleet/types.js';
import { testContext } from '../test/agent/fleet/helpers.js';
import { startRedisServer } from '../test/helpers/redis-server.js';

const total = Number(process.argv[2] ?? 3000);
const server = await startRedisServer();
const policy = { sessionsPerInstance: 200, maxInstances: 3, sessionsPerPrincipal: 1_000_000 };
const agents = ['agent-a', 'agent-b', 'agent-c'].map((id, i) => {
  const context = testContext({ instanceId: id, redisUrl: server.url, policy, port: 43_000 + i });
  // Long timers: the measurement is placement, not heartbeats.
  const coordinator = new FleetCoordinator(context, {
    fleet: 'bench',
    commandTimeoutMs: 5000,
    leaseMs: 60_000,
    activityFlushMs: 60_000,
    sweepIntervalMs: 60_000,
  });
  return { id, context, coordinator };
});
await Promise.all(agents.map((a) => a.coordinator.start()));
await Promise.all(agents.map((a) => a.coordinator.refresh()));
const byId = new Map(agents.map((a) => [a.id, a]));
const capacity = agents.length * policy.sessionsPerInstance;

let serial = 0;
/** Fills the fleet to `batch` sessions with `parallel` loops; returns the time spent placing and opening. */
async function fill(batch: number, parallel: number): Promise<{ ms: number; ids: Array<[string, string]> }> {
  const ids: Array<[string, string]> = [];
  let left = batch;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async (_, loop) => {
      const from = agents[loop % agents.length]!;
      while (left-- > 0) {
        const placement: Placement = await from.coordinator.place({ principal: `user-${serial % 50}` });
        const owner = placement.kind === 'local' ? from : byId.get(placement.instanceId)!;
        const id = `s-${serial++}`;
        await owner.coordinator.open({ reservationId: placement.reservationId, principal: placement.principal }, id);
        ids.push([owner.id, id]);
      }
    }),
  );
  return { ms: performance.now() - started, ids };
}

async function empty(ids: Array<[string, string]>): Promise<void> {
  for (const [owner, id] of ids) byId.get(owner)!.context.sessions.end(id, 'deleted');
  // Ends are written back asynchronously; wait until the fleet has room again.
  const keys = agents[0]!.coordinator.keys;
  while ((await agents[0]!.coordinator.redis.zcard(keys.byInstance)) > 0) await new Promise((r) => setTimeout(r, 5));
}

async function placementsPerSecond(parallel: number): Promise<number> {
  await empty((await fill(200, parallel)).ids); // warm up
  let done = 0;
  let ms = 0;
  while (done < total) {
    const batch = Math.min(capacity - 30, total - done);
    const run = await fill(batch, parallel);
    ms += run.ms;
    done += batch;
    await empty(run.ids);
  }
  return done / (ms / 1000);
}

async function baseline(parallel: number): Promise<number> {
  const redis = agents[0]!.coordinator.redis;
  let left = total;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (left-- > 0) {
        await redis.hset('sessionfleet:{bench}:baseline', `k${left}`, 'x');
        await redis.hset('sessionfleet:{bench}:baseline', `k${left}`, 'y');
      }
    }),
  );
  return total / ((performance.now() - started) / 1000);
}

console.log(
  `redis-server ${server.url}, 3 agents × ${policy.sessionsPerInstance} slots, ${total} sessions per row, Node ${process.version}, ${cpus().length} CPUs\n`,
);
console.log(
  '| loops in parallel | baseline: 2 HSET round trips (/s) | place + open (placements/s) | placement / baseline |',
);
console.log('| ---: | ---: | ---: | ---: |');
for (const parallel of [1, 16]) {
  const base = await baseline(parallel);
  const ours = await placementsPerSecond(parallel);
  console.log(`| ${parallel} | ${base.toFixed(0)} | ${ours.toFixed(0)} | ${(ours / base).toFixed(2)} |`);
}

await Promise.all(agents.map((a) => a.coordinator.stop()));
for (const a of agents) a.context.close();
await server.stop();
