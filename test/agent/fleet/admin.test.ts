/**
 * The fleet inventory and kill switch, through the coordinators and through the admin port's
 * routes (token-protected like /admin/sessions), on the run's real Redis.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildAdminApp } from '../../../agent/admin.js';
import type { AgentContext, Front } from '../../../agent/core/context.js';
import { UpstreamProbe } from '../../../agent/core/probe.js';
import { sleep, startAgents, type TestAgent, waitFor } from './helpers.js';

const url = inject('redisUrl');
let fleet: Awaited<ReturnType<typeof startAgents>>;
let a: TestAgent;
let b: TestAgent;
let c: TestAgent;
const terminatedOnB: string[] = [];

async function open(agent: TestAgent, id: string, principal: string, tenant?: string) {
  const placement = await agent.coordinator.place({ principal, ...(tenant ? { tenant } : {}) });
  if (placement.kind !== 'local') throw new Error('expected a local placement');
  return agent.coordinator.open(placement, id);
}

beforeAll(async () => {
  fleet = await startAgents(['agent-a', 'agent-b', 'agent-c'], { url, policy: { sessionsPerInstance: 5 } });
  [a, b, c] = fleet.agents as [TestAgent, TestAgent, TestAgent];
  // What the front provides: end the session upstream (DELETE, session.delete...), then locally.
  b.coordinator.onTerminate(async (id) => {
    terminatedOnB.push(id);
    return b.context.sessions.end(id, 'terminated');
  });
  await open(a, 'old-a1', 'alice', 'acme');
  await open(b, 'old-b1', 'bob', 'acme');
  await sleep(1100);
  await open(a, 'new-a2', 'alice');
  await open(c, 'new-c1', 'alice');
  await open(b, 'new-b2', 'carol');
  a.context.sessions.beginRequest(a.context.sessions.get('new-a2')!);
});

afterAll(async () => {
  await fleet.stop();
});

describe('the fleet inventory', () => {
  it('lists every session of the fleet, filtered by principal, tenant, instance and age', async () => {
    const all = await b.coordinator.listSessions();
    expect(all.truncated).toBe(false);
    // Oldest first (sessions created in the same millisecond by id).
    expect(all.sessions.map((s) => s.id).slice(0, 2)).toEqual(['old-a1', 'old-b1']);
    expect(all.sessions.map((s) => s.id).sort()).toEqual(['new-a2', 'new-b2', 'new-c1', 'old-a1', 'old-b1']);
    const ids = async (filter: Parameters<typeof a.coordinator.listSessions>[0]) =>
      (await c.coordinator.listSessions(filter)).sessions.map((s) => s.id).sort();
    expect(await ids({ principal: 'alice' })).toEqual(['new-a2', 'new-c1', 'old-a1']);
    expect(await ids({ tenant: 'acme' })).toEqual(['old-a1', 'old-b1']);
    expect(await ids({ instanceId: 'agent-b' })).toEqual(['new-b2', 'old-b1']);
    expect(await ids({ principal: 'alice', instanceId: 'agent-a' })).toEqual(['new-a2', 'old-a1']);
    expect(await ids({ minAgeSeconds: 1 })).toEqual(['old-a1', 'old-b1']);
    expect(await ids({ maxAgeSeconds: 0 })).toEqual(['new-a2', 'new-b2', 'new-c1']);
    const limited = await c.coordinator.listSessions({ limit: 2 });
    expect(limited.sessions).toHaveLength(2);
    expect(limited.truncated).toBe(true);
  });

  it('inspects one session, with live details when the owner answers', async () => {
    expect(await c.coordinator.inspect('new-a2')).toMatchObject({
      id: 'new-a2',
      owner: 'agent-a',
      ownerAlive: true,
      principal: 'alice',
      tenant: null,
      resumable: false,
      ageSeconds: 0,
    });
    expect(await a.coordinator.inspect('new-a2')).toMatchObject({ inFlight: 1, openStreams: 0 });
    expect(await a.coordinator.inspect('nope')).toBeUndefined();
  });
});

describe('the kill switch', () => {
  it("asks the owner's agent to end the session properly, wherever the request arrives", async () => {
    expect(await a.coordinator.terminate('new-b2')).toEqual({ terminated: true, via: 'owner', owner: 'agent-b' });
    expect(terminatedOnB).toEqual(['new-b2']);
    expect(b.context.ended).toContainEqual(['new-b2', 'terminated']);
    await waitFor('the record to go', async () => (await a.coordinator.inspect('new-b2')) === undefined);
    expect(await a.coordinator.terminate('old-a1')).toEqual({ terminated: true, via: 'local', owner: 'agent-a' });
    expect(await a.coordinator.terminate('never')).toEqual({ terminated: false, via: 'none', owner: null });
  });

  it('ends the record in the registry when the owner is gone', async () => {
    c.crash();
    expect(await a.coordinator.terminate('new-c1')).toEqual({ terminated: true, via: 'registry', owner: 'agent-c' });
    expect(await a.coordinator.inspect('new-c1')).toBeUndefined();
  });
});

describe('the admin routes', () => {
  it('serves the inventory and the kill switch behind the admin token', async () => {
    const context = {
      ...a.context,
      config: { ...a.context.config, adminToken: 'admin-token-0123' },
      principals: undefined,
      draining: false,
    } satisfies AgentContext;
    const probe = new UpstreamProbe({ check: async () => {}, intervalMs: 1000, unhealthyAfterMs: 10_000 });
    const front: Front = {
      kind: 'http',
      listen: async () => ({ host: '127.0.0.1', port: 0 }),
      drain: async () => {},
      close: async () => {},
    };
    const app = buildAdminApp({ context, probe, front, fleet: a.coordinator });
    const auth = { authorization: 'Bearer admin-token-0123' };
    try {
      expect((await app.inject({ url: '/admin/fleet/sessions' })).statusCode).toBe(401);
      const list = await app.inject({ url: '/admin/fleet/sessions?principal=alice', headers: auth });
      expect(list.statusCode).toBe(200);
      expect(list.json()).toMatchObject({
        instanceId: 'agent-a',
        count: 1,
        truncated: false,
        sessions: [{ id: 'new-a2' }],
      });

      const bad = await app.inject({ url: '/admin/fleet/sessions?minAgeSeconds=-1&colour=red', headers: auth });
      expect(bad.statusCode).toBe(400);
      expect(bad.json()).toEqual({
        error: {
          code: 'BAD_REQUEST',
          message: 'minAgeSeconds ("-1") must be a whole number ≥ 0; unknown filter "colour": fix the request',
          status: 400,
        },
      });

      const one = await app.inject({ url: '/admin/fleet/sessions/old-b1', headers: auth });
      expect(one.json()).toMatchObject({ id: 'old-b1', owner: 'agent-b', principal: 'bob', tenant: 'acme' });
      const missing = await app.inject({ url: '/admin/fleet/sessions/nope', headers: auth });
      expect(missing.statusCode).toBe(404);
      expect(missing.json().error.code).toBe('SESSION_NOT_FOUND');

      const killed = await app.inject({ method: 'DELETE', url: '/admin/fleet/sessions/old-b1', headers: auth });
      expect(killed.json()).toEqual({ sessionId: 'old-b1', terminated: true, via: 'owner', owner: 'agent-b' });
      expect(terminatedOnB).toContain('old-b1');
      const again = await app.inject({ method: 'DELETE', url: '/admin/fleet/sessions/old-b1', headers: auth });
      expect(again.statusCode).toBe(404);

      const instances = await app.inject({ url: '/admin/fleet/instances', headers: auth });
      const byId = Object.fromEntries(
        (instances.json() as { instances: Array<{ id: string; alive: boolean; self: boolean }> }).instances.map((i) => [
          i.id,
          i,
        ]),
      );
      expect(byId['agent-a']).toMatchObject({ alive: true, self: true, capacity: 5 });
      expect(byId['agent-b']).toMatchObject({ alive: true, self: false });
      await waitFor('agent-c to be seen dead', async () => {
        const r = await app.inject({ url: '/admin/fleet/instances', headers: auth });
        return (r.json() as { instances: Array<{ id: string; alive: boolean }> }).instances.some(
          (i) => i.id === 'agent-c' && !i.alive,
        );
      });
    } finally {
      await app.close();
    }
  });
});
