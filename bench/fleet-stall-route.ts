/**
 * Routing a request whose owner is known while the fleet store is stalled (issue 14: requests the
 * non-owner forwarded ran at p50 ≈ 1 s during a SIGSTOP). Two in-process agents of one fleet on a
 * private redis-server with the production lease (10 s) and route cache (5 s), each with its
 * `Router`; one client asks the non-owner for a session held by the other agent every 20 ms. The
 * time of each decision is recorded before the stall (the baseline) and during a BENCH_STALL_MS
 * (12 s) SIGSTOP; the script prints p50, p90 and max of both phases, the ratio of the p50s, and
 * how many decisions took over 500 ms (a command timeout is 1 s) and how many lookups failed. Run with `npx tsx bench/fleet-stall-route.ts`.
 */
import { availableParallelism, cpus } from 'node:os';
import { Router } from '../agent/routing/router.js';
import { startAgents, type TestAgent } from '../test/agent/fleet/helpers.js';
import { startRedisServer } from '../test/helpers/redis-server.js';

const STALL_MS = Number(process.env.BENCH_STALL_MS ?? 12_000);
const BASELINE_MS = 3000;
const caller = { principal: 'alice', tenant: undefined };
const requester = { signal: new AbortController().signal };

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? 0;

async function lookupsFailed(agent: TestAgent): Promise<number> {
  const text = await agent.context.metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith('sessionfleet_fleet_outcomes_total{outcome="lookup_failed"'));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function main() {
  const redis = await startRedisServer();
  const fleet = await startAgents(['owner', 'other'], {
    url: redis.url,
    coordinator: { leaseMs: 10_000, remoteCacheMs: 5000, activityFlushMs: 2000, sweepIntervalMs: 5000 },
  });
  try {
    const [owner, other] = fleet.agents as [TestAgent, TestAgent];
    const router = new Router({
      coordinator: other.coordinator,
      sessions: other.context.sessions,
      instanceId: other.id,
      policy: other.context.policy,
      purpose: 'http-forward',
      draining: () => false,
    });
    const id = owner.coordinator.mintSessionId();
    await owner.coordinator.open(await owner.coordinator.place({ principal: 'alice' }), id);
    const phase = async (ms: number, during?: () => void) => {
      const times: number[] = [];
      const outcomes = new Map<string, number>();
      during?.();
      const end = Date.now() + ms;
      while (Date.now() < end) {
        const started = performance.now();
        const decision = await router.decide({ id, whenMissing: 'reject' }, caller, undefined, requester);
        times.push(performance.now() - started);
        const key = decision.kind === 'refuse' ? `refuse ${decision.error.code}` : decision.kind;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, 20));
      }
      return { times: times.sort((a, b) => a - b), outcomes };
    };
    const baseline = await phase(BASELINE_MS);
    const failedBefore = await lookupsFailed(other);
    const stalled = await phase(STALL_MS, () => redis.pause());
    redis.resume();
    const failed = (await lookupsFailed(other)) - failedBefore;
    const show = (name: string, p: { times: number[]; outcomes: Map<string, number> }) =>
      `${name}: ${p.times.length} decisions, p50 ${quantile(p.times, 0.5).toFixed(2)} ms, p90 ${quantile(p.times, 0.9).toFixed(2)} ms, max ${(p.times.at(-1) ?? 0).toFixed(1)} ms, ${p.times.filter((t) => t >= 500).length} over 500 ms; ${[...p.outcomes].map(([k, n]) => `${k} ${n}`).join(', ')}`;
    console.log(`routing through a stalled Redis: ${cpus()[0]?.model ?? 'cpu'} × ${availableParallelism()}`);
    console.log(show('before the stall', baseline));
    console.log(show(`during a ${STALL_MS / 1000} s SIGSTOP`, stalled));
    const ratio = quantile(stalled.times, 0.5) / Math.max(quantile(baseline.times, 0.5), 0.001);
    console.log(`p50 during / before: ${ratio.toFixed(2)}; registry lookups that failed (lookup_failed): ${failed}`);
  } finally {
    redis.resume();
    await fleet.stop();
    await redis.stop();
  }
}

await main();
