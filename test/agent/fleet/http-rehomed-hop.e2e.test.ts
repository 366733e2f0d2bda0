/**
 * A session re-homed to a third instance, end to end: three agent processes with `--redis`,
 * header affinity with `sharedSessionState`, each in front of its own WebSocket service (in this
 * process, it also answers plain requests with its marker). Two slots per instance: a holds the
 * two sessions under test, b is full with two sessions of its own, c holds nothing.
 *
 * a is killed with SIGKILL and its lease lapsed in the registry (set to "now", as in
 * `http-websocket-stale-owner.e2e.test.ts`: the fleet runs with a long lease, so nothing else
 * changes while the test runs). A request, then an upgrade, for a's sessions arrive at b. b does
 * not hold them and asks the registry, which re-homes each one where there is room — not on b,
 * which is full, but on c — and b forwards it to c over a hop. c does not hold the session yet:
 * the registry names it the owner, so c adopts it and its service serves it. (Before, c answered
 * a hop for any session it did not hold "not the owner"; b's one retry found c named again and
 * got the same answer, and the client got 404 for a session the registry said c owned.)
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentProcess, stopAll } from '../../helpers/http-agent-process.js';
import { ask, wsClients } from './fixtures/ws-client.js';
import { startWsService, type WsService } from './fixtures/ws-service.js';
import { fleetAdmin, inspector, lapseLease, spawnMembers } from './helpers.js';

const ADMIN_TOKEN = 'admin-token-rehomed-hop-5d21e8';
const IDS = ['a', 'b', 'c'] as const;
type Id = (typeof IDS)[number];
/** Long enough that no agent's heartbeat changes its view of the fleet while the test runs. */
const LEASE_MS = 60_000;
const POLICY = {
  affinity: { type: 'header', headerName: 'x-session' },
  sessionsPerInstance: 2,
  maxInstances: 3,
  sharedSessionState: true,
};

let redis: Redis;
let fleet: string;
let agents: Record<Id, AgentProcess>;
const services = {} as Record<Id, WsService>;
const clients = wsClients();

beforeAll(async () => {
  redis = await inspector(inject('redisUrl'));
  for (const id of IDS) services[id] = await startWsService(`service-${id}`);
  // One after the other, so each one has the ones before it in its view of the fleet.
  ({ fleet, agents } = await spawnMembers({
    ids: IDS,
    policy: POLICY,
    upstream: (id) => services[id].url,
    redisUrl: inject('redisUrl'),
    adminToken: ADMIN_TOKEN,
    extraArgs: ['--fleet-lease-ms', String(LEASE_MS)],
    inOrder: true,
  }));
}, 60_000);

afterAll(async () => {
  clients.terminate();
  await stopAll();
  await Promise.all(Object.values(services).map((s) => s.close()));
  await redis?.quit();
});

const { owners } = fleetAdmin<Id>((agent) => agents[agent].adminUrl, ADMIN_TOKEN);

function hello(via: Id, id: string): Promise<Response> {
  return fetch(`${agents[via].url}/hello`, { headers: { 'x-session': id } });
}

const open = (via: Id, id: string) => clients.open(agents[via].url, { 'x-session': id });

/** How many requests `agent` refused with `code`, from its metrics. */
async function rejections(agent: Id, code: string): Promise<number> {
  const text = await (await fetch(`${agents[agent].adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`sessionfleet_rejections_total{code="${code}"`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

const stamp = Date.now();
const REQUEST = `rehomed-request-${stamp}`;
const UPGRADE = `rehomed-upgrade-${stamp}`;
const FILLERS = [`b-filler-1-${stamp}`, `b-filler-2-${stamp}`];

describe('a session whose owner died, re-homed by the fleet to a third instance', () => {
  beforeAll(async () => {
    for (const id of [REQUEST, UPGRADE]) expect(await (await hello('a', id)).text()).toBe('service-a');
    for (const id of FILLERS) expect(await (await hello('b', id)).text()).toBe('service-b');
    const before = await owners('b');
    expect([REQUEST, UPGRADE, ...FILLERS].map((id) => before[id])).toEqual(['a', 'a', 'b', 'b']);
    // a is dead to the fleet; b has no free slot, so the registry moves a's sessions to c.
    await agents.a.stop('SIGKILL');
    expect(await lapseLease(redis, fleet, 'a')).toBe(1);
  }, 30_000);

  it('a request through b is forwarded to c, adopted there and served by c’s service', async () => {
    const response = await hello('b', REQUEST);
    expect({ status: response.status, body: await response.text() }).toEqual({ status: 200, body: 'service-c' });
    expect((await owners('b'))[REQUEST]).toBe('c');
    // c holds it now: served there whichever agent takes it.
    expect(await (await hello('c', REQUEST)).text()).toBe('service-c');
    expect(await (await hello('b', REQUEST)).text()).toBe('service-c');
    // c never answered the hop "not the owner" (that answer is the expired status).
    expect(await rejections('c', 'SESSION_NOT_FOUND')).toBe(0);
  }, 30_000);

  it('an upgrade through b takes the same routing step: adopted by c, opened by c’s service', async () => {
    // c has a slot left whether or not the request above was adopted (its registry entry is c's).
    const ws = await open('b', UPGRADE);
    expect(await ask(ws, 'who is there?')).toBe('service-c:who is there?');
    expect(services.c.handshakes.map((h) => h['x-session'])).toEqual([UPGRADE]);
    expect((await owners('c'))[UPGRADE]).toBe('c');
    expect(await rejections('c', 'SESSION_NOT_FOUND')).toBe(0);
    ws.close();
  }, 30_000);

  it('moved nothing else: b’s own sessions stay on b', async () => {
    const after = await owners('c');
    expect(FILLERS.map((id) => after[id])).toEqual(['b', 'b']);
  });
});
