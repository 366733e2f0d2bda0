/**
 * A fleet through a stalled (not restarted) Redis: redis-server stopped with SIGSTOP for longer
 * than the lease, then SIGCONT — the fault of issue 14 in which the owner kept serving a session
 * while the registry dropped it and the other agent answered "not found" for good. Two agents on a
 * private redis-server, clients on both asking for the session every 50 ms; every answer is
 * recorded and judged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentError } from '../../../agent/core/errors.js';
import { type RedisServer, startRedisServer } from '../../helpers/redis-server.js';
import { sleep, startAgents, type TestAgent, waitFor } from './helpers.js';

const LEASE_MS = 1500;
let server: RedisServer;

beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(async () => {
  server.resume();
  await server.stop();
});

type Outcome = 'local' | 'remote-owner' | 'unavailable' | `wrong:${string}`;

async function ask(agent: TestAgent, id: string, owner: string): Promise<Outcome> {
  try {
    const route = await agent.coordinator.route(id);
    if (route.kind === 'local') return agent.id === owner ? 'local' : 'wrong:local-copy';
    if (route.kind === 'remote')
      return route.instanceId === owner ? 'remote-owner' : `wrong:remote-${route.instanceId}`;
    return `wrong:${route.kind}${route.kind === 'gone' ? `-${route.reason}` : ''}`;
  } catch (error) {
    // 503 with Retry-After: the client retries; not a wrong answer.
    if (error instanceof AgentError && error.code === 'STORE_UNAVAILABLE') return 'unavailable';
    return `wrong:${error instanceof Error ? error.message : String(error)}`;
  }
}

async function stall(seconds: number) {
  const fleet = await startAgents(['agent-a', 'agent-b'], {
    url: server.url,
    policy: { sessionsPerInstance: 5 },
    coordinator: { leaseMs: LEASE_MS },
  });
  try {
    const [a, b] = fleet.agents as [TestAgent, TestAgent];
    const id = a.coordinator.mintSessionId();
    await a.coordinator.open(await a.coordinator.place({ principal: 'alice' }), id);
    expect(await b.coordinator.route(id)).toMatchObject({ kind: 'remote', instanceId: 'agent-a' });
    const log: Array<{ at: number; agent: string; outcome: Outcome }> = [];
    let running = true;
    const client = async (agent: TestAgent) => {
      while (running) {
        log.push({ at: Date.now(), agent: agent.id, outcome: await ask(agent, id, 'agent-a') });
        await sleep(50);
      }
    };
    const clients = [client(a), client(b)];
    await sleep(500);
    server.pause();
    await sleep(seconds * 1000);
    server.resume();
    const resumedAt = Date.now();
    // Converged: the registry gives the session to its owner again, and both agents agree.
    await waitFor(
      'the owner to re-assert the session',
      async () => (await b.coordinator.inspect(id))?.owner === 'agent-a',
      10_000,
    );
    await sleep(2 * LEASE_MS);
    running = false;
    await Promise.all(clients);
    return { a, b, id, log, resumedAt };
  } finally {
    await fleet.stop();
  }
}

describe('a Redis stalled by SIGSTOP', () => {
  for (const seconds of [5, 15]) {
    it(`for ${seconds} s: the owner keeps the session, the fleet converges within one lease, no answer is wrong`, async () => {
      const { log, resumedAt } = await stall(seconds);
      const wrong = log.filter((e) => e.outcome.startsWith('wrong'));
      const counts = new Map<string, number>();
      for (const e of log) counts.set(`${e.agent} ${e.outcome}`, (counts.get(`${e.agent} ${e.outcome}`) ?? 0) + 1);
      const summary = [...counts].map(([k, n]) => `${k}: ${n}`);
      console.log(`stall ${seconds} s: ${log.length} answers; ${summary.join(', ')}`);
      expect(log.length).toBeGreaterThan(20);
      // The owner served it throughout.
      expect(log.filter((e) => e.agent === 'agent-a').every((e) => e.outcome === 'local')).toBe(true);
      // One lease after Redis came back, every answer on the other agent is the owner.
      const late = log.filter((e) => e.agent === 'agent-b' && e.at > resumedAt + LEASE_MS);
      expect(late.length).toBeGreaterThan(5);
      expect(late.map((e) => e.outcome).filter((o) => o !== 'remote-owner')).toEqual([]);
      expect(wrong).toEqual([]);
    }, 90_000);
  }
});
