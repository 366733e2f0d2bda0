/**
 * Header affinity lets the client choose the session id, so an id whose session ended must stay
 * refused for one session lifetime (README, "Affinity": "an id that ended in the last session
 * lifetime: pick a new one") — on every agent of a fleet, not only on the one that ended it.
 *
 * Real processes: two agents of one fleet (`--redis`, the run's redis-server) and, for the
 * reference answer, one agent without Redis, each in front of its own plain HTTP service that
 * records what reaches it. A session is ended (idle timeout; the kill switch) and its id is then
 * sent through both fleet agents: each must answer exactly what the single agent answers for an
 * id that ended the same way (status and body), and no request under the old id may reach a
 * service again. A fresh id keeps working, so the refusals are not a fleet refusing everything.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentProcess, spawnAgent, stopAll } from '../../helpers/http-agent-process.js';
import { startUpstream, type Upstream } from '../http/fixtures/upstream.js';
import { fleetAdmin, spawnMembers, waitFor } from './helpers.js';

const ADMIN_TOKEN = 'admin-token-ended-ids-7c41d2';
const IDS = ['a', 'b', 'solo'] as const;
type Id = (typeof IDS)[number];
/** Idle timeout 2 s (so a test can watch a session idle out), lifetime an hour. */
const POLICY = {
  affinity: { type: 'header', headerName: 'x-session' },
  sessionsPerInstance: 5,
  maxInstances: 2,
  sessionLifetimeSeconds: 3600,
  sessionIdleTimeoutSeconds: 2,
};

const services = {} as Record<Id, Upstream>;
const agents = {} as Record<Id, AgentProcess>;
const { admin } = fleetAdmin<Id>((id) => agents[id].adminUrl, ADMIN_TOKEN);

beforeAll(async () => {
  await Promise.all(IDS.map(async (id) => (services[id] = await startUpstream())));
  const members = await spawnMembers({
    ids: ['a', 'b'] as const,
    policy: POLICY,
    upstream: (id) => services[id].url,
    redisUrl: inject('redisUrl'),
    adminToken: ADMIN_TOKEN,
  });
  Object.assign(agents, members.agents);
  agents.solo = await spawnAgent({ policy: POLICY, upstream: services.solo.url, args: ['--admin-token', ADMIN_TOKEN] });
}, 60_000);

afterAll(async () => {
  await stopAll();
  await Promise.all(Object.values(services).map((s) => s.close()));
});

async function send(via: Id, id: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${agents[via].url}/echo`, { method: 'POST', headers: { 'x-session': id }, body: '{}' });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** How many requests under session `id` reached any service. */
const reached = (id: string) =>
  IDS.reduce((n, s) => n + services[s].received.filter((r) => r.headers['x-session'] === id).length, 0);

/** Whether the fleet (asked through `via`) still registers session `id`. */
async function registered(id: string, via: Id = 'b'): Promise<boolean> {
  return (await admin(via, `/admin/fleet/sessions/${encodeURIComponent(id)}`)).status === 200;
}

describe('an ended header-affinity session id, across the agents of a fleet', () => {
  it('an id that idled out on a is refused through b (and a) exactly as a single agent refuses it', async () => {
    const stamp = Date.now();
    const id = `idle-${stamp}`;
    const reference = `solo-idle-${stamp}`;
    expect((await send('a', id)).status).toBe(200);
    expect((await send('solo', reference)).status).toBe(200);
    expect(await registered(id)).toBe(true);

    // The owner's idle timeout (2 s) ends it; the fleet's record goes with it.
    await waitFor('the session idled out in the fleet', async () => !(await registered(id)), 10_000, 100);
    await waitFor(
      'the single agent’s session idled out',
      async () => !(await sessionsOf('solo')).includes(reference),
      10_000,
      100,
    );

    const expected = await send('solo', reference);
    expect(expected).toEqual({
      status: 401,
      body: {
        error: {
          code: 'SESSION_EXPIRED',
          message: 'Session expired: the session was idle past its timeout: start a new session',
          status: 401,
          reason: 'expired-idle',
        },
      },
    });
    for (const via of ['b', 'a', 'b'] as const) expect(await send(via, id)).toEqual(expected);
    // Nothing under the old id reached a service after the first request, and nothing was registered.
    expect(reached(id)).toBe(1);
    expect(await registered(id)).toBe(false);

    // A fresh id is still welcome through b.
    const fresh = `fresh-${stamp}`;
    expect((await send('b', fresh)).status).toBe(200);
    expect(reached(fresh)).toBe(1);
  });

  it('an id ended by the kill switch (asked through b, held by a) is refused through both agents', async () => {
    const stamp = Date.now();
    const id = `killed-${stamp}`;
    const reference = `solo-killed-${stamp}`;
    expect((await send('a', id)).status).toBe(200);
    expect((await send('solo', reference)).status).toBe(200);

    const killed = await admin('b', `/admin/fleet/sessions/${encodeURIComponent(id)}`, 'DELETE');
    expect(killed.body).toMatchObject({ terminated: true, via: 'owner', owner: 'a' });
    expect((await admin('solo', `/admin/sessions/${encodeURIComponent(reference)}`, 'DELETE')).status).toBe(200);

    const expected = await send('solo', reference);
    expect(expected).toEqual({
      status: 401,
      body: {
        error: {
          code: 'SESSION_EXPIRED',
          message: 'Session expired: the session was terminated by an operator: start a new session',
          status: 401,
          reason: 'terminated',
        },
      },
    });
    for (const via of ['b', 'a', 'b'] as const) expect(await send(via, id)).toEqual(expected);
    expect(reached(id)).toBe(1);
    expect(await registered(id)).toBe(false);
  });
});

async function sessionsOf(agent: Id): Promise<string[]> {
  const { body } = await admin(agent, '/admin/sessions');
  return (body.sessions as Array<{ id: string }>).map((s) => s.id);
}
