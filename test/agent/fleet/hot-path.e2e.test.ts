/**
 * Proof that a request for a locally owned session costs no Redis command: a private
 * redis-server (nobody else's commands in its counters), and INFO commandstats before and after
 * a thousand requests' worth of routing and activity.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedisServer } from '../../helpers/redis-server.js';
import { inspector, startAgents, type TestAgent } from './helpers.js';

let server: RedisServer;
let plain: Redis;
let fleet: Awaited<ReturnType<typeof startAgents>>;

/** Commands Redis executed so far (those run inside scripts included), not counting the INFO that asks. */
async function commands(): Promise<Record<string, number>> {
  const text = await plain.info('commandstats');
  const out: Record<string, number> = {};
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (match[1] !== 'info') out[match[1]!] = Number(match[2]);
  }
  return out;
}

function delta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, calls] of Object.entries(after)) {
    const d = calls - (before[name] ?? 0);
    if (d > 0) out[name] = d;
  }
  return out;
}

const scriptCalls = (d: Record<string, number>) => (d.eval ?? 0) + (d.evalsha ?? 0);

beforeAll(async () => {
  server = await startRedisServer();
  plain = await inspector(server.url);
  // Timers far apart, so no heartbeat or flush lands inside a measurement.
  fleet = await startAgents(['agent-a', 'agent-b'], {
    url: server.url,
    coordinator: { leaseMs: 60_000, heartbeatMs: 60_000, activityFlushMs: 60_000, sweepIntervalMs: 60_000 },
  });
});

afterAll(async () => {
  await fleet.stop();
  await plain.quit();
  await server.stop();
});

describe('the request path of a locally owned session', () => {
  it('issues zero Redis commands; activity goes back in one batched command', async () => {
    const [a, b] = fleet.agents as [TestAgent, TestAgent];
    const placement = await a.coordinator.place({ principal: 'alice' });
    const session = await a.coordinator.open(placement, a.coordinator.mintSessionId());
    const remote = await b.coordinator.open(await b.coordinator.place(), 'held-by-b');

    const before = await commands();
    for (let i = 0; i < 1000; i++) {
      // What a front does per request: find the owner, count the request in and out.
      const route = await a.coordinator.route(session.id);
      if (route.kind !== 'local') throw new Error(`expected local, got ${route.kind}`);
      a.context.sessions.beginRequest(route.session);
      a.context.sessions.endRequest(route.session);
    }
    expect(delta(before, await commands())).toEqual({});

    // A session held elsewhere: one script call the first time, then the cached owner.
    const first = await commands();
    for (let i = 0; i < 100; i++) expect((await a.coordinator.route(remote.id)).kind).toBe('remote');
    expect(scriptCalls(delta(first, await commands()))).toBe(1);
    const cached = await commands();
    for (let i = 0; i < 100; i++) expect((await a.coordinator.route(remote.id)).kind).toBe('remote');
    expect(delta(cached, await commands())).toEqual({});

    // The activity of those thousand requests goes back at the next flush: one ZADD.
    const beforeFlush = await commands();
    await a.coordinator.flush();
    expect(delta(beforeFlush, await commands())).toEqual({ zadd: 1 });
    // Nothing new happened: the next flush sends nothing.
    const idle = await commands();
    await a.coordinator.flush();
    expect(delta(idle, await commands())).toEqual({});
  });
});
