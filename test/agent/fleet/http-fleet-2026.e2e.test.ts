/**
 * MCP 2026-07-28 traffic through a two-agent fleet with Redis (issue 15, ADR 0015): the limits
 * per principal hold across agents (the budget sync), and session isolation pins each principal
 * to its own instance wherever its requests enter. Real redis-server, two agent processes, each
 * in front of its own SDK v2 server (in this process), SDK v2 clients and raw HTTP.
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import { type AgentProcess, spawnAgent, stopAll } from '../../helpers/http-agent-process.js';
import { type McpV2Upstream, startMcpV2Upstream } from '../../helpers/mcp-v2-upstream.js';
import { memberArgs, memberPorts, uniqueFleet } from './helpers.js';

const ADMIN_TOKEN = 'admin-token-fleet-2026';
const upstreams: McpV2Upstream[] = [];
const clients: Client[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close().catch(() => {});
  await stopAll();
  for (const u of upstreams.splice(0)) await u.close();
});
afterAll(async () => {
  await stopAll();
});

async function fleetOf(policy: Record<string, unknown>): Promise<Record<'a' | 'b', AgentProcess>> {
  const fleet = uniqueFleet();
  const redisUrl = inject('redisUrl');
  const ports = await memberPorts(['a', 'b'] as const);
  const agents = {} as Record<'a' | 'b', AgentProcess>;
  for (const id of ['a', 'b'] as const) {
    const upstream = await startMcpV2Upstream();
    upstreams.push(upstream);
    agents[id] = await spawnAgent({
      policy: { affinity: { type: 'mcp-streamable-http' }, ...policy },
      upstream: upstream.url,
      args: [
        ...memberArgs({ id, port: ports[id], redisUrl, fleet, adminToken: ADMIN_TOKEN }),
        '--principal-header',
        'x-user',
      ],
    });
  }
  return agents;
}

async function clientOf(a: AgentProcess, user: string) {
  const client = new Client({ name: `fleet-${user}`, version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
  clients.push(client);
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${a.url}/mcp`), { requestInit: { headers: { 'x-user': user } } }),
  );
  return client;
}

/** A raw `subscriptions/listen`: its status, and the refusal body if refused (an accepted stream is closed at once). */
async function listen(a: AgentProcess, user: string): Promise<{ status: number; code?: string; limit?: string }> {
  const aborted = new AbortController();
  const response = await fetch(`${a.url}/mcp`, {
    method: 'POST',
    signal: aborted.signal,
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'subscriptions/listen',
      'x-user': user,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'subscriptions/listen',
      params: {
        notifications: { toolsListChanged: true },
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1.0.0' },
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  });
  if (response.status === 200) {
    aborted.abort();
    return { status: 200 };
  }
  const body = (await response.json()) as { error: { data: { code: string; limit?: string } } };
  return {
    status: response.status,
    code: body.error.data.code,
    ...(body.error.data.limit ? { limit: body.error.data.limit } : {}),
  };
}

async function eventually<T>(attempt: () => Promise<T>, done: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const value = await attempt();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`not ${what} within 15 s (last: ${JSON.stringify(value)})`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('MCP 2026 through a two-agent fleet', () => {
  it('streamsPerPrincipal holds across agents: a listen on a counts on b', async () => {
    const { a, b } = await fleetOf({ limits: { streamsPerPrincipal: 1 } });
    const alice = await clientOf(a, 'alice');
    const open = await alice.listen({ toolsListChanged: true });

    const refused = await eventually(
      () => listen(b, 'alice'),
      (r) => r.status === 429,
      'refused on b',
    );
    expect(refused).toEqual({ status: 429, code: 'PRINCIPAL_LIMIT_REACHED', limit: 'streamsPerPrincipal' });
    expect((await listen(b, 'bob')).status).toBe(200);

    // Closed on a: b lets alice listen again once the fleet knows.
    await open.close();
    await eventually(
      () => listen(b, 'alice'),
      (r) => r.status === 200,
      'admitted on b again',
    );
  }, 60_000);

  it('session isolation pins each principal to its own instance, whichever agent its requests enter', async () => {
    const { a, b } = await fleetOf({ isolation: 'session', maxInstances: 2, placementWaitSeconds: 0 });
    for (const user of ['alice', 'bob']) {
      for (const entry of [a, b, a]) {
        const client = await clientOf(entry, user);
        await client.callTool({ name: 'echo', arguments: {} });
      }
    }
    const served = upstreams.map((u) => [...new Set(u.users)].sort());
    // Each upstream saw exactly one principal, and the two saw different ones.
    expect(served.map((users) => users.length)).toEqual([1, 1]);
    expect(served.flat().sort()).toEqual(['alice', 'bob']);
  }, 60_000);
});
