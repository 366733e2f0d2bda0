/**
 * WebSocket upgrades in an HTTP fleet, end to end: the run's redis-server, three agent processes
 * with `--redis` (header affinity, one session per instance), each in front of its own tiny
 * WebSocket service running in this process that answers every message with its instance's
 * marker. The tests run in order on one fleet, each building on the state the previous one left:
 *
 * - a session held by a is used over a WebSocket opened at b and at c: the messages are answered
 *   by a's service, the agents' headers stop at a, and the owner's stream count returns to 0;
 * - bytes sent right behind the handshake (Node's `head`) reach the owner's service;
 * - a session whose first request is an upgrade at a full agent is placed on another instance;
 * - a forged forwarding mark cannot bypass placement (the fleet is full: 429);
 * - the owner agent gone (SIGKILL): 502 UPSTREAM_UNAVAILABLE over the raw socket.
 *
 * And two agents with cookie affinity: a new session first opened as a WebSocket at a full agent
 * is placed on the other, whose agent mints the cookie (relayed on the 101); that cookie then
 * reaches the owner's service through either agent.
 */
import { connect as netConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
import { type AgentProcess, stopAll } from '../../helpers/http-agent-process.js';
import { ask, wsClients } from './fixtures/ws-client.js';
import { startWsService, type WsService } from './fixtures/ws-service.js';
import { fleetAdmin, spawnMembers, waitFor } from './helpers.js';

const ADMIN_TOKEN = 'admin-token-ws-fleet-7d41c2';
const IDS = ['a', 'b', 'c'] as const;
type Id = (typeof IDS)[number];
const POLICY = {
  affinity: { type: 'header', headerName: 'x-session' },
  sessionsPerInstance: 1,
  maxInstances: 3,
  placementWaitSeconds: 0,
};

const services = {} as Record<Id, WsService>;
let agents: Record<Id, AgentProcess>;
const clients = wsClients();

beforeAll(async () => {
  await Promise.all(IDS.map(async (id) => (services[id] = await startWsService(`service-${id}`))));
  ({ agents } = await spawnMembers({
    ids: IDS,
    policy: POLICY,
    upstream: (id) => services[id].url,
    redisUrl: inject('redisUrl'),
    adminToken: ADMIN_TOKEN,
  }));
}, 60_000);

afterAll(async () => {
  clients.terminate();
  await stopAll();
  await Promise.all(Object.values(services).map((s) => s.close()));
});

const { admin, owners } = fleetAdmin<Id>((agent) => agents[agent].adminUrl, ADMIN_TOKEN);

const eventually = (check: () => Promise<boolean>, timeoutMs: number, what: string) =>
  waitFor(what, check, timeoutMs, 100);

/** The owner of session `id` in the fleet inventory. */
const ownerOf = async (id: string) => (await owners('a'))[id];

/** The open streams of session `id` on `agent`'s own table (undefined: not held there). */
async function openStreams(agent: Id, id: string): Promise<number | undefined> {
  const { sessions } = (await admin(agent, '/admin/sessions')).body as {
    sessions: Array<{ id: string; openStreams: number }>;
  };
  return sessions.find((s) => s.id === id)?.openStreams;
}

const open = (agent: Id, headers: Record<string, string>) => clients.open(agents[agent].url, headers);
const refused = (agent: Id, headers: Record<string, string>) => clients.refused(agents[agent].url, headers);

function closed(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    ws.once('close', () => resolve());
    ws.close();
  });
}

/** A masked client text frame (payload under 126 bytes). */
function textFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

describe('WebSocket upgrades in an HTTP fleet (3 agents, --redis)', () => {
  const held = `ws-held-${Date.now()}`;
  const placed = `ws-placed-${Date.now()}`;

  it('tunnels an upgrade reaching a non-owner agent to the owner: the owner’s service answers', async () => {
    // First seen at a (by an ordinary request): a holds it and is full.
    const first = await fetch(`${agents.a.url}/hello`, { headers: { 'x-session': held } });
    expect(first.status).toBe(200);
    expect(await first.text()).toBe('service-a');
    expect(await ownerOf(held)).toBe('a');

    for (const via of ['b', 'c'] as const) {
      const ws = await open(via, { 'x-session': held });
      expect(await ask(ws, `hi from ${via}`)).toBe(`service-a:hi from ${via}`);
      expect(await ask(ws, 'again')).toBe('service-a:again');
      expect(await openStreams('a', held)).toBe(1);
      await closed(ws);
      await eventually(async () => (await openStreams('a', held)) === 0, 5_000, 'the stream released');
    }
    expect(services.a.handshakes).toHaveLength(2);
    expect(services.b.handshakes).toHaveLength(0);
    expect(services.c.handshakes).toHaveLength(0);
    for (const headers of services.a.handshakes) {
      expect(headers['x-session']).toBe(held);
      expect(Object.keys(headers).filter((h) => h.startsWith('x-sessionfleet-'))).toEqual([]);
    }
  });

  it('passes the bytes sent right behind the handshake (the `head` buffer) to the owner', async () => {
    const { hostname, port } = new URL(agents.c.url);
    const socket = netConnect(Number(port), hostname);
    const received: Buffer[] = [];
    const answer = new Promise<string>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        received.push(chunk);
        const all = Buffer.concat(received);
        const end = all.indexOf('\r\n\r\n');
        if (end < 0) return;
        const frame = all.subarray(end + 4);
        if (frame.length < 2 || frame.length < 2 + (frame[1]! & 0x7f)) return;
        resolve(`${all.subarray(0, all.indexOf('\r\n')).toString()} | ${frame.subarray(2).toString()}`);
      });
      socket.once('error', reject);
    });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const handshake = [
      'GET /ws HTTP/1.1',
      `host: ${hostname}:${port}`,
      'connection: Upgrade',
      'upgrade: websocket',
      'sec-websocket-version: 13',
      'sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==',
      `x-session: ${held}`,
      '',
      '',
    ].join('\r\n');
    socket.write(Buffer.concat([Buffer.from(handshake), textFrame('early')]));
    try {
      expect(await answer).toBe('HTTP/1.1 101 Switching Protocols | service-a:early');
    } finally {
      socket.destroy();
    }
    await eventually(async () => (await openStreams('a', held)) === 0, 5_000, 'the stream released');
  });

  it('places a session whose first request is an upgrade at a full agent on another instance', async () => {
    const ws = await open('a', { 'x-session': placed });
    const owner = await ownerOf(placed);
    expect(owner === 'b' || owner === 'c').toBe(true);
    expect(await ask(ws, 'where')).toBe(`service-${owner}:where`);
    expect(services.a.handshakes).toHaveLength(3);
    expect(services[owner as Id].handshakes).toHaveLength(1);
    expect(services[owner as Id].handshakes[0]!['x-session']).toBe(placed);
    await closed(ws);
    // Its owner serves it over HTTP too, whichever agent the request reaches.
    const again = await fetch(`${agents.a.url}/hello`, { headers: { 'x-session': placed } });
    expect(await again.text()).toBe(`service-${owner}`);
  });

  it('ignores a forwarding mark a client forged on an upgrade: it cannot bypass placement', async () => {
    // The last free slot goes to an ordinary request: the fleet is full.
    const last = await fetch(`${agents.a.url}/hello`, { headers: { 'x-session': `ws-last-${Date.now()}` } });
    expect(last.status).toBe(200);
    await last.arrayBuffer();
    const forged = `v1 b a ${Date.now()} r-forged AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`;
    const before = IDS.map((id) => services[id].handshakes.length);
    const answer = await refused('a', {
      'x-session': `ws-forged-${Date.now()}`,
      'x-sessionfleet-forwarded-by': forged,
    });
    expect(answer.status).toBe(429);
    expect(answer.headers['retry-after']).toBe('5');
    expect(answer.body).toEqual({
      error: {
        code: 'SESSION_LIMIT_REACHED',
        status: 429,
        message: 'every instance is full and the fleet is at maxInstances (3 of 3 running): back off and retry',
        retryAfterSeconds: 5,
        fleetAtMax: true,
      },
    });
    expect(IDS.map((id) => services[id].handshakes.length)).toEqual(before);
    const log = agents.a.logs().find((l) => l.msg === 'ignored an invalid forwarding mark');
    expect(log).toMatchObject({ reason: 'forwarding mark with a bad signature' });
  });

  it('answers 502 UPSTREAM_UNAVAILABLE over the raw socket when the owner agent cannot be reached', async () => {
    await agents.a.stop('SIGKILL');
    const answer = await refused('b', { 'x-session': held });
    expect(answer.status).toBe(502);
    expect(answer.headers['retry-after']).toBe('1');
    expect(answer.body).toEqual({
      error: {
        code: 'UPSTREAM_UNAVAILABLE',
        status: 502,
        message: 'the agent of the instance that holds this session is not answering: retry shortly',
        retryAfterSeconds: 1,
        cause: 'ECONNREFUSED',
      },
    });
  });
});

describe('WebSocket upgrades in a cookie-affinity fleet (2 agents, --redis)', () => {
  const COOKIE_IDS = ['x', 'y'] as const;
  type CookieId = (typeof COOKIE_IDS)[number];
  const cookieServices = {} as Record<CookieId, WsService>;
  let cookieAgents: Record<CookieId, AgentProcess>;

  beforeAll(async () => {
    await Promise.all(COOKIE_IDS.map(async (id) => (cookieServices[id] = await startWsService(`service-${id}`))));
    ({ agents: cookieAgents } = await spawnMembers({
      ids: COOKIE_IDS,
      policy: { ...POLICY, affinity: { type: 'cookie', cookieName: 'sf' }, maxInstances: 2 },
      upstream: (id) => cookieServices[id].url,
      redisUrl: inject('redisUrl'),
      adminToken: ADMIN_TOKEN,
    }));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(Object.values(cookieServices).map((s) => s.close()));
  });

  /** Opens a WebSocket at `agent`; resolves with it and the session cookie its handshake answer set. */
  function openWithCookie(agent: CookieId, cookie?: string): Promise<{ ws: WebSocket; setCookie: string | undefined }> {
    const ws = clients.socket(cookieAgents[agent].url, cookie ? { cookie } : {});
    return new Promise((resolve, reject) => {
      let setCookie: string | undefined;
      ws.once('upgrade', (res) => {
        setCookie = res.headers['set-cookie']?.[0];
      });
      ws.once('open', () => resolve({ ws, setCookie }));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
    });
  }

  it('places a new cookie session first opened as a WebSocket at a full agent on the other one, then routes its cookie there', async () => {
    const first = await openWithCookie('x');
    expect(first.setCookie).toMatch(/^sf=[^;]+;/);
    expect(await ask(first.ws, 'one')).toBe('service-x:one');

    // x is full: the second session is placed on y, whose agent mints the cookie.
    const second = await openWithCookie('x');
    expect(second.setCookie).toMatch(/^sf=[^;]+;/);
    expect(second.setCookie).not.toBe(first.setCookie);
    expect(await ask(second.ws, 'two')).toBe('service-y:two');
    await closed(second.ws);

    const cookie = second.setCookie!.split(';')[0]!;
    const again = await openWithCookie('x', cookie);
    expect(again.setCookie).toBeUndefined();
    expect(await ask(again.ws, 'three')).toBe('service-y:three');
    expect(cookieServices.y.handshakes.map((h) => h.cookie)).toEqual([undefined, cookie]);
    for (const headers of cookieServices.y.handshakes)
      expect(Object.keys(headers).filter((h) => h.startsWith('x-sessionfleet-'))).toEqual([]);
    await closed(again.ws);
    await closed(first.ws);
  });
});
