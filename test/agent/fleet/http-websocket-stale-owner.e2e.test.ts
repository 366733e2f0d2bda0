/**
 * A WebSocket upgrade forwarded to a stale owner, end to end: pairs of agent processes with
 * `--redis`, each in front of its own WebSocket service (in this process). The owner agent of a
 * session is killed with SIGKILL, and the upgrade for that session reaches the other agent, whose
 * route to it still names the dead owner (it forwarded a request there moments before). The tunnel
 * to the owner cannot be opened (connection refused); the agent then routes the upgrade once more,
 * exactly as it does a request, and on this first attempt:
 *
 * - with shared session state (header affinity) the session is adopted and the upgrade opened by
 *   the agent's own service;
 * - without it (cookie affinity) the client gets the answer a request gets: 401 INVALID_COOKIE
 *   with the cookie cleared, not a 502.
 *
 * The same holds when the owner was restarted (same instance id and address) and answers that it
 * no longer holds the session.
 *
 * The stale route: a killed owner's lease lapses in Redis at the same moment the other agents'
 * views of the fleet let it go, so the window in which an agent still routes to a dead owner the
 * registry already gave up is short. The test opens it deterministically: the fleets run with a
 * long lease (60 s: no agent refreshes its view during a test), and right after the SIGKILL the
 * killed instance's lease deadline is set to "now" in Redis — the one thing the test writes to the
 * store itself, standing for the lease running out. The forwarding agent's log (or the restarted
 * owner's metrics) shows that the upgrade did go to the old owner first.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentProcess, stopAll } from '../../helpers/http-agent-process.js';
import { ask, wsClients } from './fixtures/ws-client.js';
import { startWsService, type WsService } from './fixtures/ws-service.js';
import { fleetAdmin, inspector, lapseLease, spawnMembers, waitFor } from './helpers.js';

const ADMIN_TOKEN = 'admin-token-ws-stale-3f9a27';
/** Long enough that no agent's heartbeat refreshes its view of the fleet while a test runs. */
const LEASE_MS = 60_000;
const UNREACHABLE_LOG = 'the owner agent did not answer the handshake';

let redis: Redis;
const services: WsService[] = [];
const clients = wsClients();

beforeAll(async () => {
  redis = await inspector(inject('redisUrl'));
});

afterAll(async () => {
  clients.terminate();
  await stopAll();
  await Promise.all(services.map((s) => s.close()));
  await redis.quit();
});

/**
 * Two agents of a new fleet, each in front of its own WebSocket service marked `service-<id>`.
 * They start one after the other, so the second (the one that forwards in these tests) has the
 * first in its view of the fleet from its registration on: its cached route to the first is used
 * without asking Redis until its next heartbeat, a third of the lease later.
 */
async function startFleet<Id extends string>(ids: readonly [Id, Id], policy: Record<string, unknown>) {
  const serviceOf = {} as Record<Id, WsService>;
  for (const id of ids) {
    serviceOf[id] = await startWsService(`service-${id}`);
    services.push(serviceOf[id]);
  }
  const { fleet, agents, respawn } = await spawnMembers({
    ids,
    policy,
    upstream: (id) => serviceOf[id].url,
    redisUrl: inject('redisUrl'),
    adminToken: ADMIN_TOKEN,
    // A restarted owner gives up what it held (no reconcile: with it, ADR 0022, it would adopt
    // the header sessions of its earlier life again, and never answer "not held" here).
    extraArgs: ['--fleet-lease-ms', String(LEASE_MS), '--fleet-reconcile-ms', '0'],
    inOrder: true,
  });
  const registered = agents[ids[1]].logs().find((l) => l.msg === 'registered with the fleet');
  expect(registered?.instances).toBe(2);
  const { owners } = fleetAdmin<Id>((agent) => agents[agent].adminUrl, ADMIN_TOKEN);
  /** SIGKILL, then the same instance again on the same address (as a restarted pod of a StatefulSet). */
  const restart = async (id: Id) => {
    await agents[id].stop('SIGKILL');
    await respawn(id);
  };
  return { fleet, agents, services: serviceOf, owners, restart };
}

/** SIGKILL, then the dead instance's lease lapsed in the registry (see the file's comment). */
async function killAndLapse(agent: AgentProcess, fleet: string, instanceId: string): Promise<void> {
  await agent.stop('SIGKILL');
  expect(await lapseLease(redis, fleet, instanceId)).toBe(1);
}

const open = (agent: AgentProcess, headers: Record<string, string>) => clients.open(agent.url, headers);
const refused = (agent: AgentProcess, headers: Record<string, string>) => clients.refused(agent.url, headers);

/** How many requests `agent` refused with `code`, from its metrics. */
async function rejections(agent: AgentProcess, code: string): Promise<number> {
  const text = await (await fetch(`${agent.adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`sessionfleet_rejections_total{code="${code}"`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** Whether `agent` logs `msg` for request `reqId` (its log lines reach this process a little later). */
async function logs(agent: AgentProcess, reqId: string, msg: string): Promise<boolean> {
  const found = () => agent.logs().some((l) => l.reqId === reqId && l.msg === msg);
  return waitFor(`the log "${msg}"`, found, 2_000).catch(() => false);
}

const SHARED = {
  affinity: { type: 'header', headerName: 'x-session' },
  sessionsPerInstance: 5,
  maxInstances: 2,
  sharedSessionState: true,
};

describe('a WebSocket upgrade forwarded to a SIGKILLed owner, with shared session state', () => {
  it('is routed again on its first attempt: the session is adopted and the upgrade opened here', async () => {
    const { fleet, agents, services, owners } = await startFleet(['a', 'b'] as const, SHARED);
    const id = `ws-stale-${Date.now()}`;
    // First seen at a, so a holds it; b then forwards a request to a and keeps a as its route.
    for (const via of [agents.a, agents.b]) {
      const response = await fetch(`${via.url}/hello`, { headers: { 'x-session': id } });
      expect(response.status).toBe(200);
      expect(await response.text()).toBe('service-a');
    }
    expect((await owners('b'))[id]).toBe('a');

    await killAndLapse(agents.a, fleet, 'a');

    const reqId = `ws-stale-shared-${Date.now()}`;
    const ws = await open(agents.b, { 'x-session': id, 'x-request-id': reqId });
    expect(await ask(ws, 'still there?')).toBe('service-b:still there?');
    // It went to the dead owner first (the stale route), and was then adopted by b.
    expect(await logs(agents.b, reqId, UNREACHABLE_LOG)).toBe(true);
    expect(services.b.handshakes.map((h) => h['x-session'])).toEqual([id]);
    expect(services.b.handshakes.map((h) => h['x-request-id'])).toEqual([reqId]);
    expect((await owners('b'))[id]).toBe('b');
    ws.close();
  }, 60_000);

  it('is routed again when the owner restarted and no longer holds it: adopted here, not refused', async () => {
    const { agents, services, owners, restart } = await startFleet(['p', 'q'] as const, SHARED);
    const id = `ws-restarted-${Date.now()}`;
    for (const via of [agents.p, agents.q]) {
      const response = await fetch(`${via.url}/hello`, { headers: { 'x-session': id } });
      expect(await response.text()).toBe('service-p');
    }
    // The new p registers afresh and, without the reconcile, gives up what it held; q's route still names p,
    // which is alive and answers the forwarded upgrade that it does not hold the session.
    await restart('p');
    const ws = await open(agents.q, { 'x-session': id });
    expect(await ask(ws, 'moved?')).toBe('service-q:moved?');
    expect(await rejections(agents.p, 'SESSION_NOT_FOUND')).toBe(1);
    expect(services.p.handshakes).toEqual([]);
    expect((await owners('q'))[id]).toBe('q');
    ws.close();
  }, 60_000);
});

describe('a WebSocket upgrade forwarded to a SIGKILLed owner, without shared session state', () => {
  it('gets on its first attempt the same answer a request gets: 401 INVALID_COOKIE, cookie cleared', async () => {
    const { fleet, agents, owners } = await startFleet(['x', 'y'] as const, {
      affinity: { type: 'cookie', cookieName: 'sf' },
      sessionsPerInstance: 5,
      maxInstances: 2,
    });
    // Two sessions started at x (one for a request, one for an upgrade), each then used through y,
    // which keeps x as their route.
    const cookies: string[] = [];
    for (let i = 0; i < 2; i++) {
      const created = await fetch(`${agents.x.url}/hello`);
      expect(await created.text()).toBe('service-x');
      const cookie = created.headers.get('set-cookie')?.split(';')[0];
      expect(cookie).toMatch(/^sf=/);
      const through = await fetch(`${agents.y.url}/hello`, { headers: { cookie: cookie! } });
      expect(await through.text()).toBe('service-x');
      cookies.push(cookie!);
    }
    const held = await owners('y');
    expect(cookies.map((c) => held[c.slice('sf='.length)])).toEqual(['x', 'x']);

    await killAndLapse(agents.x, fleet, 'x');

    const request = await fetch(`${agents.y.url}/hello`, { headers: { cookie: cookies[0]! } });
    const requestBody = (await request.json()) as { error: { code: string } };
    expect(request.status).toBe(401);
    expect(requestBody.error.code).toBe('INVALID_COOKIE');

    const reqId = `ws-stale-unshared-${Date.now()}`;
    const upgrade = await refused(agents.y, { cookie: cookies[1]!, 'x-request-id': reqId });
    expect(upgrade.status).toBe(401);
    expect(upgrade.body).toEqual(requestBody);
    expect(upgrade.headers['set-cookie']).toEqual([request.headers.get('set-cookie')]);
    expect(upgrade.headers['set-cookie']![0]).toMatch(/^sf=;/);
    expect(await logs(agents.y, reqId, UNREACHABLE_LOG)).toBe(true);
    // Both sessions are gone from the fleet, not merely unroutable.
    const left = await owners('y');
    expect(cookies.map((c) => left[c.slice('sf='.length)])).toEqual([undefined, undefined]);
  }, 60_000);
});
