/**
 * Redis outages, with the real redis-server stopped and restarted under load (a private server:
 * the rest of the run keeps its own). Documented behaviour (docs/fleet.md): sessions held locally
 * keep working; new sessions get 503 with Retry-After, or with failOpen are placed locally;
 * sessions held elsewhere are routed by cached owner or signed owner hint; nothing waits on the
 * dead Redis; everything recovers by itself when Redis returns, which comes back empty and is
 * rebuilt from what the agents hold.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentError } from '../../../agent/core/errors.js';
import { fleetKeys } from '../../../agent/fleet/keys.js';
import { type RedisServer, startRedisServer } from '../../helpers/redis-server.js';
import { inspector, sleep, startAgents, type TestAgent, uniqueFleet, waitFor } from './helpers.js';

let server: RedisServer;
let plain: Redis | undefined;
const running: Array<{ stop(): Promise<void> }> = [];

beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(async () => {
  await Promise.all(running.map((r) => r.stop()));
  await plain?.quit();
  await server.stop();
});

async function timed<T>(latencies: number[], work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await work();
  } finally {
    latencies.push(performance.now() - started);
  }
}

describe('a Redis outage', () => {
  it('keeps local sessions serving, rejects or fails open new ones, and recovers by itself', async () => {
    const fleet = uniqueFleet();
    const policy = { sessionsPerInstance: 200, concurrencyPerInstance: 200 };
    const strict = await startAgents(['agent-a'], { url: server.url, fleet, policy });
    const lenient = await startAgents(['agent-b'], { url: server.url, fleet, policy: { ...policy, failOpen: true } });
    running.push(strict, lenient);
    const a = strict.agents[0] as TestAgent;
    const b = lenient.agents[0] as TestAgent;
    await a.coordinator.refresh();

    const local = await a.coordinator.open(await a.coordinator.place(), a.coordinator.mintSessionId());
    const hinted = await b.coordinator.open(await b.coordinator.place(), b.coordinator.mintSessionId());
    const cached = await b.coordinator.open(await b.coordinator.place(), 'plain-id-on-b');
    expect(await a.coordinator.route(cached.id)).toMatchObject({ kind: 'remote', via: 'registry' });

    await server.stop();
    await waitFor('both agents to notice', () => !a.coordinator.available && !b.coordinator.available);

    const outcomes: Record<string, number> = {};
    const count = (what: string) => {
      outcomes[what] = (outcomes[what] ?? 0) + 1;
    };
    const latencies: number[] = [];
    const failOpenIds: string[] = [];
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      await Promise.all([
        timed(latencies, async () => {
          const route = await a.coordinator.route(local.id);
          if (route.kind !== 'local') throw new Error('local session not served locally');
          a.context.sessions.beginRequest(route.session);
          a.context.sessions.endRequest(route.session);
          count('local session served');
        }),
        timed(latencies, () =>
          a.coordinator.place().then(
            () => count('new session placed (unexpected)'),
            (error: AgentError) => {
              expect(error.code).toBe('STORE_UNAVAILABLE');
              expect(error.toHttpBody(404).error).toMatchObject({ status: 503, retryAfterSeconds: 2 });
              count('new session 503 (failOpen false)');
            },
          ),
        ),
        timed(latencies, async () => {
          const placement = await b.coordinator.place();
          const session = await b.coordinator.open(placement, b.coordinator.mintSessionId());
          failOpenIds.push(session.id);
          count('new session placed locally (failOpen true)');
        }),
        timed(latencies, async () => {
          const route = await a.coordinator.route(hinted.id);
          expect(route).toMatchObject({ kind: 'remote', instanceId: 'agent-b', via: 'hint' });
          count('remote session routed by owner hint');
        }),
        timed(latencies, async () => {
          const route = await a.coordinator.route(cached.id);
          expect(route).toMatchObject({ kind: 'remote', instanceId: 'agent-b', via: 'cache' });
          count('remote session routed by cached owner');
        }),
        timed(latencies, () =>
          a.coordinator.route('no-hint-never-seen').then(
            () => count('unroutable routed (unexpected)'),
            (error: AgentError) => {
              expect(error.code).toBe('STORE_UNAVAILABLE');
              count('unroutable session 503');
            },
          ),
        ),
        timed(latencies, () =>
          a.coordinator.lock.acquire(local.id).then(
            () => count('lock granted (unexpected)'),
            (error: AgentError) => {
              expect(error.code).toBe('STORE_UNAVAILABLE');
              count('collaborative lock 503');
            },
          ),
        ),
      ]);
      await sleep(10);
    }
    latencies.sort((x, y) => x - y);
    const p99 = latencies[Math.floor(latencies.length * 0.99)]!;
    console.info(
      `Redis down for 1.5 s: ${JSON.stringify(outcomes, null, 1)}; ${latencies.length} calls, ` +
        `p99 ${p99.toFixed(2)} ms, max ${latencies.at(-1)!.toFixed(2)} ms`,
    );
    expect(Object.keys(outcomes).filter((k) => k.includes('unexpected'))).toEqual([]);
    expect(Object.keys(outcomes)).toHaveLength(7);
    // Nothing waited on the dead Redis.
    expect(latencies.at(-1)!).toBeLessThan(250);

    // Redis returns, empty. Nobody restarts anything.
    await server.start();
    await waitFor('both agents to register again', () => a.coordinator.available && b.coordinator.available, 10_000);
    plain = await inspector(server.url);
    const keys = fleetKeys({ fleet });
    const owners = async (ids: string[]) =>
      (await plain!.hmget(keys.sessions, ...ids)).map((raw) => (raw ? (JSON.parse(raw) as { o: string }).o : null));
    expect(await owners([local.id])).toEqual(['agent-a']);
    expect(await owners([hinted.id, cached.id, ...failOpenIds])).toEqual(
      [hinted.id, cached.id, ...failOpenIds].map(() => 'agent-b'),
    );
    expect(await plain.zcard(keys.leases)).toBe(2);
    // New sessions are placed again; sessions placed during the outage are routable from anywhere.
    expect(await a.coordinator.place()).toMatchObject({ kind: 'local' });
    a.coordinator.forget(failOpenIds[0]!);
    expect(await a.coordinator.route(failOpenIds[0]!)).toMatchObject({ kind: 'remote', via: 'registry' });
    // Ids minted before the restart still carry a valid owner hint.
    expect(a.coordinator.hints?.read(hinted.id)?.instanceId).toBe('agent-b');
    const lease = await a.coordinator.lock.acquire(local.id);
    await lease.release();
    // The agents' channels are subscribed again: the kill switch reaches the owner.
    expect(await a.coordinator.terminate(failOpenIds[1]!)).toEqual({
      terminated: true,
      via: 'owner',
      owner: 'agent-b',
    });
  }, 30_000);
});
