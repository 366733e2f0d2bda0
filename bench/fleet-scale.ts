/**
 * What the fleet costs Redis as it grows: fleets of 10, 100 and 1,000 simulated instances on one
 * private redis-server. A simulated instance is a lightweight client running the real registry
 * scripts (`FleetRegistry`: heartbeat, place, open, end) with no agent and no upstream around it;
 * the instances share a few connections. Each holds 20 sessions (capacity 22), with steady churn:
 * sessions end on random instances while new ones are placed from random instances, half of them
 * by an instance that takes nothing itself (so placement has to choose among the others).
 *
 * Per size it prints Redis CPU time per placement and per heartbeat (the script time in
 * `INFO commandstats`, EVALSHA + EVAL, which is what the single Redis thread spends on them; the
 * median over batches of 50 placements and over heartbeat rounds),
 * placement latency p50/p99 as the client sees it (one placement at a time), and Redis memory
 * per registered session (`used_memory` before and after filling). Each heartbeat round also
 * restarts one instance (leave, then register again), so the fleet's membership changes as it
 * would in production. The last line compares the largest fleet with the smallest:
 *
 *   fleet-scale: placement cost 1000/10 = X, heartbeat cost per instance 1000/10 = Y
 *
 * (both stay near 1 when costs do not grow with the fleet). Runs on any version of the registry
 * that has `FleetRegistry.heartbeat/place/open/end` (a worktree of an older commit included).
 *
 *   npx tsx bench/fleet-scale.ts [sizes, default 10,100,1000] [placements per size, default 2000]
 */
import { Redis } from 'ioredis';
import { fleetKeys } from '../agent/fleet/keys.js';
import { FleetRegistry } from '../agent/fleet/registry.js';
import { startRedisServer } from '../test/helpers/redis-server.js';

const sizes = (process.argv[2] ?? '10,100,1000').split(',').map(Number);
const placements = Number(process.argv[3] ?? 2000);
const SESSIONS = 20;
const CAPACITY = 22;
const CONNECTIONS = 8;
const HEARTBEAT_ROUNDS = 7;
const BATCH = 50;

const server = await startRedisServer();
const admin = new Redis(server.url);
const connections = Array.from({ length: CONNECTIONS }, () => new Redis(server.url, { enableAutoPipelining: false }));

/** Runs `work` over `items` with `parallel` loops. */
async function each<T>(items: readonly T[], parallel: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/** Microseconds Redis spent running scripts since the last reset. */
async function scriptUsec(): Promise<{ usec: number; calls: number }> {
  const text = await admin.info('commandstats');
  let usec = 0;
  let calls = 0;
  for (const line of text.split('\n')) {
    const m = /^cmdstat_(evalsha|eval):calls=(\d+),usec=(\d+)/.exec(line.trim());
    if (m) {
      calls += Number(m[2]);
      usec += Number(m[3]);
    }
  }
  return { usec, calls };
}

async function usedMemory(): Promise<number> {
  const m = /used_memory:(\d+)/.exec(await admin.info('memory'));
  return Number(m?.[1] ?? 0);
}

/**
 * The machine is shared: a batch during which Redis was preempted reads high. Costs are the median
 * over batches (placements) and rounds (heartbeats), which such spikes do not move.
 */
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

interface Sim {
  id: string;
  registry: FleetRegistry;
  sessions: string[];
  known: { epoch: string; version: number } | undefined;
}

interface Row {
  size: number;
  placeUsec: number;
  /** A session's place, open and end together. */
  lifecycleUsec: number;
  heartbeatUsec: number;
  p50: number;
  p99: number;
  bytesPerSession: number;
  remote: number;
}

let serial = 0;

async function measure(size: number): Promise<Row> {
  await admin.flushall();
  const fleet = `scale-${size}`;
  const keys = fleetKeys({ fleet });
  const registries = connections.map((c) => {
    const r = new FleetRegistry(c, keys);
    r.memory = { ttlMs: 6 * 3600_000, cap: 100_000 };
    return r;
  });
  const sims: Sim[] = Array.from({ length: size }, (_, i) => ({
    id: `instance-${String(i).padStart(4, '0')}`,
    registry: registries[i % CONNECTIONS]!,
    sessions: [],
    known: undefined,
  }));

  const heartbeat = async (sim: Sim) => {
    const result = await sim.registry.heartbeat({
      instanceId: sim.id,
      leaseMs: 600_000,
      capacity: CAPACITY,
      address: `http://10.0.${Math.floor(Number(sim.id.slice(9)) / 250)}.${Number(sim.id.slice(9)) % 250}:8080`,
      info: { inFlight: 0, sessions: sim.sessions.length, draining: false, saturated: false },
      known: sim.known,
    });
    // Versions of the registry before membership deltas reply without one: nothing to keep.
    const r = result as Partial<{ epoch: string; version: number }>;
    sim.known = r.epoch !== undefined && r.version !== undefined ? { epoch: r.epoch, version: r.version } : undefined;
  };
  const leave = async (sim: Sim) => {
    const registry = sim.registry as FleetRegistry & { leave?: (id: string) => Promise<boolean> };
    if (typeof registry.leave === 'function') await registry.leave(sim.id);
    else await registry.redis.zadd(keys.leases, 'XX', 0, sim.id);
  };
  const simById = new Map(sims.map((s) => [s.id, s]));

  /** Places one session from `from` (a reservation); returns where and the latency (ms). */
  const place = async (from: Sim, closed: boolean) => {
    const reservationId = `r-${serial++}`;
    const principal = `user-${serial % 500}`;
    const started = performance.now();
    const placed = await from.registry.place({
      self: from.id,
      principal,
      tenant: undefined,
      principalLimit: 1_000_000,
      tenantLimit: undefined,
      maxInstances: 1000,
      reservationId,
      reservationTtlMs: 30_000,
      selfMode: closed ? 'closed' : 'open',
    });
    const ms = performance.now() - started;
    if (placed.kind !== 'placed') throw new Error(`placement failed: ${JSON.stringify(placed)}`);
    return { ms, owner: simById.get(placed.instanceId)!, from, reservationId, principal };
  };
  /** Opens the session a placement reserved, on the instance chosen. */
  const open = async (placed: Awaited<ReturnType<typeof place>>) => {
    const { owner, reservationId, principal } = placed;
    const id = `s-${serial++}`;
    const now = Date.now();
    await owner.registry.open({
      id,
      owner: owner.id,
      reservationId,
      principal,
      tenant: undefined,
      createdAt: now,
      expiresAt: now + 6 * 3600_000,
      resumable: false,
    });
    owner.sessions.push(id);
  };

  // Register every instance (twice: the second round is what a running fleet sends), then fill.
  await each(sims, 32, heartbeat);
  await each(sims, 32, heartbeat);
  const before = await usedMemory();
  await each(sims, 16, async (sim) => {
    for (let i = 0; i < SESSIONS; i++) await open(await place(sim, false));
  });
  const bytesPerSession = ((await usedMemory()) - before) / (size * SESSIONS);

  // Heartbeat periods: every instance once per round, one instance restarted per round.
  const rounds: number[] = [];
  for (let round = 0; round < HEARTBEAT_ROUNDS; round++) {
    const restarted = sims[(round * 7) % size]!;
    await admin.config('RESETSTAT');
    await leave(restarted);
    await each(sims, 32, heartbeat);
    rounds.push((await scriptUsec()).usec / size);
  }
  const heartbeatUsec = median(rounds);

  // Churn: a batch of sessions ends on random instances, then as many are placed, one at a time.
  const latencies: number[] = [];
  const batches: number[] = [];
  let remote = 0;
  let rng = 12345;
  const random = (n: number) => {
    rng = (rng * 1103515245 + 12345) % 2147483648;
    return rng % n;
  };
  const lifecycles: number[] = [];
  for (let done = 0; done < placements; done += BATCH) {
    await admin.config('RESETSTAT');
    for (let i = 0; i < BATCH; i++) {
      let sim = sims[random(size)]!;
      while (sim.sessions.length === 0) sim = sims[random(size)]!;
      const id = sim.sessions.splice(random(sim.sessions.length), 1)[0]!;
      await sim.registry.end(id, { expectedOwner: sim.id, mode: 'delete', reason: 'deleted' });
    }
    const ends = (await scriptUsec()).usec;
    await admin.config('RESETSTAT');
    const batch: Array<Awaited<ReturnType<typeof place>>> = [];
    for (let i = 0; i < BATCH; i++) batch.push(await place(sims[random(size)]!, i % 2 === 0));
    // Read before the opens: the script time since the reset is the batch's placements only.
    const places = (await scriptUsec()).usec;
    batches.push(places / BATCH);
    await admin.config('RESETSTAT');
    for (const placed of batch) {
      latencies.push(placed.ms);
      if (placed.owner !== placed.from) remote++;
      await open(placed);
    }
    lifecycles.push((ends + places + (await scriptUsec()).usec) / BATCH);
  }
  latencies.sort((a, b) => a - b);
  return {
    size,
    placeUsec: median(batches),
    lifecycleUsec: median(lifecycles),
    heartbeatUsec,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    bytesPerSession,
    remote: remote / placements,
  };
}

console.log(
  `redis-server ${server.url}, ${SESSIONS} sessions per instance (capacity ${CAPACITY}), ${placements} placements per size, Node ${process.version}\n`,
);
console.log(
  '| instances | sessions | Redis CPU per placement (µs) | per session: place + open + end (µs) | Redis CPU per heartbeat (µs) | per heartbeat period, whole fleet (ms) | placed elsewhere | placement p50 (ms) | placement p99 (ms) | Redis memory per session (B) |',
);
console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
const rows: Row[] = [];
for (const size of sizes) {
  const row = await measure(size);
  rows.push(row);
  console.log(
    `| ${size} | ${size * SESSIONS} | ${row.placeUsec.toFixed(1)} | ${row.lifecycleUsec.toFixed(1)} | ${row.heartbeatUsec.toFixed(1)} | ${((row.heartbeatUsec * size) / 1000).toFixed(2)} | ${(row.remote * 100).toFixed(0)}% | ${row.p50.toFixed(3)} | ${row.p99.toFixed(3)} | ${row.bytesPerSession.toFixed(0)} |`,
  );
}
const first = rows[0]!;
const last = rows[rows.length - 1]!;
await Promise.all(connections.map((c) => c.quit()));
await admin.quit();
await server.stop();
console.log(
  `fleet-scale: placement cost ${last.size}/${first.size} = ${(last.placeUsec / first.placeUsec).toFixed(2)}, heartbeat cost per instance ${last.size}/${first.size} = ${(last.heartbeatUsec / first.heartbeatUsec).toFixed(2)}`,
);
