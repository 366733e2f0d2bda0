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
 *
 * Ids the server mints (MCP Streamable HTTP, behind the real MCP SDK server `demo/mcp-server.ts`,
 * used by SDK clients) and ids the agent mints (cookies) are never taken for a new session, but the
 * answer for an ended one must not depend on the agent either (README, "The HTTP front in a
 * fleet"): two more fleets of two agents each, a session held by a ended with the kill switch, and
 * through b exactly the status, body (and for cookies the clearing `Set-Cookie`) a gives.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type AgentProcess,
  type Spawned,
  spawnAgent,
  spawnListening,
  stopAll,
} from '../../helpers/http-agent-process.js';
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

describe('an ended MCP Streamable HTTP session, across the agents of a fleet', () => {
  const MCP_IDS = ['a', 'b'] as const;
  type McpId = (typeof MCP_IDS)[number];
  const servers = {} as Record<McpId, Spawned & { url: string }>;
  let mcpAgents: Record<McpId, AgentProcess>;
  const clients: Client[] = [];
  const mcpAdmin = fleetAdmin<McpId>((id) => mcpAgents[id].adminUrl, ADMIN_TOKEN).admin;

  beforeAll(async () => {
    await Promise.all(MCP_IDS.map(async (id) => (servers[id] = await spawnListening('demo/mcp-server.ts'))));
    ({ agents: mcpAgents } = await spawnMembers({
      ids: MCP_IDS,
      policy: { affinity: { type: 'mcp-streamable-http' }, sessionsPerInstance: 5, maxInstances: 2 },
      upstream: (id) => servers[id].url,
      redisUrl: inject('redisUrl'),
      adminToken: ADMIN_TOKEN,
    }));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
  });

  /** An SDK client through `via`: a new session, or joining `sessionId` (no initialize). */
  async function connect(via: McpId, sessionId?: string) {
    const transport = new StreamableHTTPClientTransport(
      new URL(`${mcpAgents[via].url}/mcp`),
      sessionId ? { sessionId } : {},
    );
    const client = new Client({ name: `ended-${via}`, version: '1.0.0' });
    clients.push(client);
    await client.connect(transport);
    return { client, sessionId: transport.sessionId! };
  }

  async function toolsList(via: McpId, sessionId: string) {
    const response = await fetch(`${mcpAgents[via].url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': sessionId,
        'mcp-protocol-version': '2025-06-18',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  /** What an SDK client's tool call through its agent fails with: the HTTP status and the SDK's message. */
  async function failure(client: Client): Promise<{ code: number | undefined; message: string }> {
    const error = await client.callTool({ name: 'echo', arguments: { text: 'again' } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StreamableHTTPError);
    return { code: (error as StreamableHTTPError).code, message: (error as Error).message };
  }

  it('a session held by a and ended by the kill switch gets through b exactly the answer a gives', async () => {
    const onA = await connect('a');
    const id = onA.sessionId;
    // b forwards to the owner (and caches the route), so b's later answer is not an unseen id's.
    const onB = await connect('b', id);
    expect((await onB.client.callTool({ name: 'echo', arguments: { text: 'via b' } })).content).toEqual([
      { type: 'text', text: 'via b' },
    ]);
    expect((await mcpAdmin('b', `/admin/fleet/sessions/${encodeURIComponent(id)}`)).body).toMatchObject({
      owner: 'a',
    });

    const killed = await mcpAdmin('b', `/admin/fleet/sessions/${encodeURIComponent(id)}`, 'DELETE');
    expect(killed.body).toMatchObject({ terminated: true, via: 'owner', owner: 'a' });

    const expected = await toolsList('a', id);
    expect(expected).toEqual({
      status: 404,
      body: {
        jsonrpc: '2.0',
        error: {
          code: -32001,
          message: 'Session expired: the session was terminated by an operator: start a new session',
          data: { code: 'SESSION_EXPIRED', status: 404, reason: 'terminated' },
        },
        id: null,
      },
    });
    for (const via of ['b', 'a', 'b'] as const) expect(await toolsList(via, id)).toEqual(expected);

    // The SDK clients read the same failure through either agent.
    const [throughA, throughB] = [await failure(onA.client), await failure(onB.client)];
    expect(throughA.code).toBe(404);
    expect(throughA.message).toContain('Session expired: the session was terminated by an operator');
    expect(throughB).toEqual(throughA);
  });
});

describe('an ended cookie-affinity session, across the agents of a fleet', () => {
  const COOKIE_IDS = ['a', 'b'] as const;
  type CookieId = (typeof COOKIE_IDS)[number];
  const cookieServices = {} as Record<CookieId, Upstream>;
  let cookieAgents: Record<CookieId, AgentProcess>;
  const cookieAdmin = fleetAdmin<CookieId>((id) => cookieAgents[id].adminUrl, ADMIN_TOKEN).admin;

  beforeAll(async () => {
    await Promise.all(COOKIE_IDS.map(async (id) => (cookieServices[id] = await startUpstream())));
    ({ agents: cookieAgents } = await spawnMembers({
      ids: COOKIE_IDS,
      policy: { affinity: { type: 'cookie', cookieName: 'sf' }, sessionsPerInstance: 5, maxInstances: 2 },
      upstream: (id) => cookieServices[id].url,
      redisUrl: inject('redisUrl'),
      adminToken: ADMIN_TOKEN,
    }));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(Object.values(cookieServices).map((s) => s.close()));
  });

  async function echo(via: CookieId, cookie?: string) {
    const response = await fetch(`${cookieAgents[via].url}/echo`, {
      method: 'POST',
      headers: cookie ? { cookie } : {},
      body: '{}',
    });
    return {
      status: response.status,
      // The agent's cookie only (the service sets cookies of its own).
      setCookie: response.headers.getSetCookie().find((c) => c.startsWith('sf=')),
      body: (await response.json()) as Record<string, unknown>,
    };
  }

  it('a cookie session held by a and ended by the kill switch gets through b exactly the answer a gives', async () => {
    const minted = await echo('a');
    expect(minted.status).toBe(200);
    const cookie = minted.setCookie!.split(';')[0]!;
    const id = cookie.slice('sf='.length);
    expect((await echo('b', cookie)).status).toBe(200); // forwarded to a, the owner
    expect((await cookieAdmin('b', `/admin/fleet/sessions/${encodeURIComponent(id)}`)).body).toMatchObject({
      owner: 'a',
    });
    const reached = () =>
      COOKIE_IDS.reduce(
        (n, s) => n + cookieServices[s].received.filter((r) => r.headers.cookie?.includes(cookie)).length,
        0,
      );
    const before = reached();
    expect(before).toBeGreaterThan(0);

    const killed = await cookieAdmin('b', `/admin/fleet/sessions/${encodeURIComponent(id)}`, 'DELETE');
    expect(killed.body).toMatchObject({ terminated: true, via: 'owner', owner: 'a' });

    const expected = await echo('a', cookie);
    expect(expected).toEqual({
      status: 401,
      setCookie: 'sf=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax',
      body: {
        error: {
          code: 'INVALID_COOKIE',
          message: 'the session was terminated by an operator: retry without the cookie to get a new one',
          status: 401,
          reason: 'terminated',
        },
      },
    });
    for (const via of ['b', 'a', 'b'] as const) expect(await echo(via, cookie)).toEqual(expected);
    // Nothing under the ended cookie reached a service.
    expect(reached()).toBe(before);
  });
});
