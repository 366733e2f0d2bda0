/**
 * A fleet through a stalled (not restarted) Redis: redis-server stopped with SIGSTOP for longer
 * than the lease, then SIGCONT — the fault of issue 14 in which the owner kept serving a session
 * while the registry dropped it and the other agent answered "not found" for good — and through a
 * Redis killed and started again (empty). Two agents on a private redis-server, each with its
 * routing core (`Router`, the one both fronts call); clients on both ask for the session every
 * 50 ms. A request the non-owner forwards is carried to the owner with its signed mark and decided
 * there too. Every answer is recorded and judged: served by the owner, or 503 while unsure — never
 * "not found", never another instance.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Router } from '../../../agent/routing/router.js';
import type { Decision, SessionRef } from '../../../agent/routing/types.js';
import { type RedisServer, startRedisServer } from '../../helpers/redis-server.js';
import { sleep, startAgents, type TestAgent, waitFor } from './helpers.js';

const LEASE_MS = 1500;
/** The coordinator's default: a third of the lease. */
const HEARTBEAT_MS = LEASE_MS / 3;
/** Short, so that the non-owner's cached route ages out during the stall and the registry is asked. */
const REMOTE_CACHE_MS = 100;
const caller = { principal: 'alice', tenant: undefined };
const requester = { signal: new AbortController().signal };
let server: RedisServer;

beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(async () => {
  server.resume();
  await server.stop();
});

type Outcome = 'local' | 'forwarded-served' | 'unavailable' | `wrong:${string}`;

function routerOf(agent: TestAgent): Router {
  return new Router({
    coordinator: agent.coordinator,
    sessions: agent.context.sessions,
    instanceId: agent.id,
    policy: agent.context.policy,
    purpose: 'http-forward',
    draining: () => false,
  });
}

function judge(decision: Decision): Outcome | undefined {
  if (decision.kind === 'refuse')
    return decision.error.code === 'STORE_UNAVAILABLE' && decision.error.retryAfterSeconds !== undefined
      ? 'unavailable'
      : `wrong:refuse-${decision.error.code}`;
  if (decision.kind === 'expired') return `wrong:expired-${decision.reason}`;
  if (decision.kind !== 'serve' && decision.kind !== 'forward') return `wrong:${decision.kind}`;
  return undefined;
}

/** One request for `id` through `via`; a forward is carried to its target and decided there. */
async function ask(
  via: { agent: TestAgent; router: Router },
  owner: { agent: TestAgent; router: Router },
  ref: SessionRef,
): Promise<Outcome> {
  const decision = await via.router.decide(ref, caller, undefined, requester);
  const bad = judge(decision);
  if (bad) return bad;
  if (decision.kind === 'serve') return via.agent.id === owner.agent.id ? 'local' : 'wrong:served-by-non-owner';
  if (decision.kind !== 'forward') return `wrong:${decision.kind}`;
  if (decision.to.instanceId !== owner.agent.id) return `wrong:forward-to-${decision.to.instanceId}`;
  const mark = owner.router.acceptMark(decision.mark);
  if (!mark.ok) return `wrong:mark-${mark.reason}`;
  const there = await owner.router.decide(ref, caller, mark.mark, requester);
  const badThere = judge(there);
  if (badThere) return `wrong:at-owner-${badThere}`;
  return there.kind === 'serve' ? 'forwarded-served' : `wrong:at-owner-${there.kind}`;
}

async function lookupsFailed(agent: TestAgent): Promise<number> {
  const text = await agent.context.metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith('sessionfleet_fleet_outcomes_total{outcome="lookup_failed"'));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function interrupt(fault: { kind: 'stall'; seconds: number } | { kind: 'restart' }) {
  const fleet = await startAgents(['agent-a', 'agent-b'], {
    url: server.url,
    policy: { sessionsPerInstance: 5 },
    coordinator: { leaseMs: LEASE_MS, remoteCacheMs: REMOTE_CACHE_MS },
  });
  try {
    const [a, b] = fleet.agents as [TestAgent, TestAgent];
    const owner = { agent: a, router: routerOf(a) };
    const other = { agent: b, router: routerOf(b) };
    const id = a.coordinator.mintSessionId();
    await a.coordinator.open(await a.coordinator.place({ principal: 'alice' }), id);
    const ref: SessionRef = { id, whenMissing: 'reject' };
    expect(await b.coordinator.route(id)).toMatchObject({ kind: 'remote', instanceId: 'agent-a' });
    const log: Array<{ at: number; agent: string; outcome: Outcome; ms: number }> = [];
    let running = true;
    const client = async (via: typeof owner) => {
      while (running) {
        const started = performance.now();
        const outcome = await ask(via, owner, ref);
        log.push({ at: Date.now(), agent: via.agent.id, outcome, ms: performance.now() - started });
        await sleep(50);
      }
    };
    const clients = [client(owner), client(other)];
    await sleep(500);
    const failedBefore = await lookupsFailed(b);
    const faultAt = Date.now();
    if (fault.kind === 'stall') {
      server.pause();
      await sleep(fault.seconds * 1000);
      // With the default lease (10 s) the owner's next heartbeat lands up to 3.3 s after SIGCONT,
      // while the other agent's lookups run at once: here it is held back for most of a lease.
      void a.pauseHeartbeat(LEASE_MS - 300);
      server.resume();
    } else {
      await server.stop();
      await sleep(3 * LEASE_MS);
      await server.start();
    }
    const resumedAt = Date.now();
    // Converged: the registry gives the session to its owner again, and both agents agree.
    await waitFor(
      'the owner to re-assert the session',
      // (The inventory refuses with STORE_UNAVAILABLE until b has registered again.)
      async () => (await b.coordinator.inspect(id).catch(() => undefined))?.owner === 'agent-a',
      10_000,
    );
    await sleep(2 * LEASE_MS);
    running = false;
    await Promise.all(clients);
    const failedDuring = (await lookupsFailed(b)) - failedBefore;
    return { log, faultAt, resumedAt, failedDuring };
  } finally {
    await fleet.stop();
  }
}

function check(name: string, result: Awaited<ReturnType<typeof interrupt>>) {
  const { log, faultAt, resumedAt, failedDuring } = result;
  const wrong = log.filter((e) => e.outcome.startsWith('wrong'));
  const counts = new Map<string, number>();
  for (const e of log) counts.set(`${e.agent} ${e.outcome}`, (counts.get(`${e.agent} ${e.outcome}`) ?? 0) + 1);
  const summary = [...counts].map(([k, n]) => `${k}: ${n}`);
  const during = log
    .filter((e) => e.agent === 'agent-b' && e.at >= faultAt && e.at <= resumedAt)
    .map((e) => e.ms)
    .sort((x, y) => x - y);
  const p50 = during[Math.floor(during.length / 2)] ?? 0;
  console.log(
    `${name}: ${log.length} answers; ${summary.join(', ')}; non-owner during the fault: ${during.length} answers, p50 ${p50.toFixed(1)} ms, registry lookups that failed ${failedDuring}`,
  );
  expect(log.length).toBeGreaterThan(20);
  expect(wrong.map((e) => `${e.agent} ${e.outcome}`)).toEqual([]);
  // The owner served it throughout.
  expect(log.filter((e) => e.agent === 'agent-a').every((e) => e.outcome === 'local')).toBe(true);
  // One lease and two heartbeat periods after Redis came back (the owner renews within a lease,
  // the other agent's view shows it a heartbeat later), every answer on the other agent is the
  // owner's; before that, 503 while unsure is allowed.
  const late = log.filter((e) => e.agent === 'agent-b' && e.at > resumedAt + LEASE_MS + 2 * HEARTBEAT_MS);
  expect(late.length).toBeGreaterThan(5);
  expect(late.map((e) => e.outcome).filter((o) => o !== 'forwarded-served')).toEqual([]);
  // A request whose owner is known waits on the stalled store at most once per doubt (the first
  // lookup to time out), not once per request.
  expect(failedDuring).toBeLessThanOrEqual(3);
}

describe('a Redis interrupted under two agents', () => {
  for (const seconds of [5, 15]) {
    it(`stalled by SIGSTOP for ${seconds} s: the owner keeps the session, the fleet converges, no answer is wrong`, async () => {
      check(`stall ${seconds} s`, await interrupt({ kind: 'stall', seconds }));
    }, 90_000);
  }
  it('killed and started again (empty): the owner re-registers the session, no answer is wrong', async () => {
    check('restart', await interrupt({ kind: 'restart' }));
  }, 90_000);
});
