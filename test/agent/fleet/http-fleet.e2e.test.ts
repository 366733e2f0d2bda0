/**
 * The HTTP front in a fleet, end to end: one real redis-server (the run's), three agent processes
 * with `--redis`, each in front of its own real MCP SDK server (`demo/mcp-server.ts`), and MCP SDK
 * clients connecting to different agents. The tests run in order on one fleet, each building on
 * the state the previous one left: a session is served by its owner through every agent, placement
 * fills the free slots, the fleet full answers 429, a forged forwarding mark buys nothing, and the
 * kill switch works from a non-owner.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type AgentProcess,
  type Spawned,
  spawnAgent,
  spawnListening,
  stopAll,
} from '../../helpers/http-agent-process.js';
import { fleetAdmin, memberArgs, memberPorts, uniqueFleet } from './helpers.js';

const ADMIN_TOKEN = 'admin-token-http-fleet-3c9e1a';
const IDS = ['a', 'b', 'c'] as const;
type Id = (typeof IDS)[number];
const POLICY = {
  affinity: { type: 'mcp-streamable-http' },
  sessionsPerInstance: 2,
  maxInstances: 3,
  placementWaitSeconds: 0,
};
const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

const upstreams = {} as Record<Id, Spawned & { url: string }>;
const agents = {} as Record<Id, AgentProcess>;
const clients: Client[] = [];

beforeAll(async () => {
  const fleet = uniqueFleet();
  const redisUrl = inject('redisUrl');
  const portOf = await memberPorts(IDS);
  await Promise.all(
    IDS.map(async (id) => {
      upstreams[id] = await spawnListening('demo/mcp-server.ts');
      agents[id] = await spawnAgent({
        policy: POLICY,
        upstream: upstreams[id].url,
        args: memberArgs({ id, port: portOf[id], redisUrl, fleet, adminToken: ADMIN_TOKEN }),
      });
    }),
  );
  await eventually(async () => (await instances('a')).filter((i) => i.alive).length === 3, 10_000, 'three live');
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
  await stopAll();
});

async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const { admin, instances, owners } = fleetAdmin<Id>((agent) => agents[agent].adminUrl, ADMIN_TOKEN);

/** Live sessions on each MCP server, asked of the server itself. */
async function upstreamCounts(): Promise<Record<Id, number>> {
  const entries = await Promise.all(
    IDS.map(async (id) => {
      const counts = (await (await fetch(`${upstreams[id].url}/debug/sessions`)).json()) as { streamable: number };
      return [id, counts.streamable] as const;
    }),
  );
  return Object.fromEntries(entries) as Record<Id, number>;
}

/** An SDK client connected through `via`, or joining session `sessionId` (no new initialize). */
async function connect(
  via: Id,
  sessionId?: string,
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(
    new URL(`${agents[via].url}/mcp`),
    sessionId ? { sessionId } : {},
  );
  const client = new Client({ name: `e2e-${via}`, version: '1.0.0' });
  clients.push(client);
  await client.connect(transport);
  return { client, transport };
}

async function whoami(client: Client): Promise<string> {
  const result = (await client.callTool({ name: 'whoami', arguments: {} })) as { content: Array<{ text: string }> };
  return result.content[0]?.text ?? '';
}

function rawInitialize(via: Id, headers: Record<string, string> = {}) {
  return fetch(`${agents[via].url}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: INITIALIZE,
  });
}

describe('the HTTP front in a fleet (3 agents, --redis, real MCP servers)', () => {
  let first: string;
  let firstOwner: Id;

  it('serves a session on its owner whichever agent the client reaches', async () => {
    const { client, transport } = await connect('a');
    first = transport.sessionId!;
    expect(await whoami(client)).toBe(first);
    firstOwner = (await owners('b'))[first] as Id;
    expect(firstOwner).toBe('a'); // a had room: placed where the client arrived
    for (const via of ['b', 'c'] as const) {
      const joined = await connect(via, first);
      // The MCP server that answers knows the id: only the owner's does.
      expect(await whoami(joined.client)).toBe(first);
      expect((await joined.client.callTool({ name: 'echo', arguments: { text: `via ${via}` } })).content).toEqual([
        { type: 'text', text: `via ${via}` },
      ]);
    }
    expect(await upstreamCounts()).toEqual({ a: 1, b: 0, c: 0 });
    // The non-owners hold nothing themselves.
    for (const via of ['b', 'c'] as const) expect((await admin(via, '/admin/sessions')).body.sessions).toEqual([]);
  });

  it('places new sessions on the free slots of the fleet, then answers 429 when every instance is full', async () => {
    // Five more sessions, all through agent a: one fits on a, the other four go to b and c.
    for (let i = 0; i < 5; i++) await connect('a');
    expect(await upstreamCounts()).toEqual({ a: 2, b: 2, c: 2 });
    const byOwner = Object.values(await owners('c')).sort();
    expect(byOwner).toEqual(['a', 'a', 'b', 'b', 'c', 'c']);

    const full = await rawInitialize('b');
    expect(full.status).toBe(429);
    expect(full.headers.get('retry-after')).toBe('5');
    expect(await full.json()).toEqual({
      jsonrpc: '2.0',
      error: {
        code: -31010,
        message: 'every instance is full and the fleet is at maxInstances (3 of 3 running): back off and retry',
        data: { code: 'SESSION_LIMIT_REACHED', status: 429, retryAfterSeconds: 5, fleetAtMax: true },
      },
      id: null,
    });
  });

  it('ignores a forwarding mark a client forged: it cannot bypass placement', async () => {
    const forged = `v1 b a ${Date.now()} - AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`;
    const response = await rawInitialize('a', { 'x-sessionfleet-forwarded-by': forged });
    expect(response.status).toBe(429);
    expect(((await response.json()) as { error: { data: { code: string } } }).error.data.code).toBe(
      'SESSION_LIMIT_REACHED',
    );
    expect(await upstreamCounts()).toEqual({ a: 2, b: 2, c: 2 });
    const log = agents.a.logs().find((l) => l.msg === 'ignored an invalid forwarding mark');
    expect(log).toMatchObject({ reason: 'forwarding mark with a bad signature' });
  });

  it('ends a session with the kill switch of a non-owner agent; its slot is free again', async () => {
    const killer = IDS.find((id) => id !== firstOwner)!;
    const killed = await admin(killer, `/admin/fleet/sessions/${encodeURIComponent(first)}`, 'DELETE');
    expect(killed).toEqual({
      status: 200,
      body: { sessionId: first, terminated: true, via: 'owner', owner: firstOwner },
    });
    await eventually(async () => (await upstreamCounts())[firstOwner] === 1, 5_000, 'deleted upstream');
    // Through any agent, the session is now gone: the MCP answer that makes clients re-initialize,
    // naming the end as its owner does (the fleet remembers how it ended).
    const stale = await fetch(`${agents.c.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': first,
        'mcp-protocol-version': '2025-06-18',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    expect(stale.status).toBe(404);
    expect(await stale.json()).toEqual({
      jsonrpc: '2.0',
      error: {
        code: -32001,
        message: 'Session expired: the session was terminated by an operator: start a new session',
        data: { code: 'SESSION_EXPIRED', status: 404, reason: 'terminated' },
      },
      id: null,
    });
    // The freed slot takes the next session, whichever agent it arrives at.
    const { transport } = await connect('c');
    expect((await owners('a'))[transport.sessionId!]).toBe(firstOwner);
  });

  it('frees a session slot fleet-wide on a DELETE sent through a non-owner', async () => {
    const all = await owners('a');
    const [id, owner] = Object.entries(all).find(([, o]) => o === 'b')!;
    const response = await fetch(`${agents.a.url}/mcp`, {
      method: 'DELETE',
      headers: { 'mcp-session-id': id, 'mcp-protocol-version': '2025-06-18' },
    });
    expect(response.status).toBe(200);
    await eventually(async () => (await owners('c'))[id] === undefined, 5_000, 'unregistered');
    expect((await upstreamCounts())[owner as Id]).toBe(1);
  });
});
