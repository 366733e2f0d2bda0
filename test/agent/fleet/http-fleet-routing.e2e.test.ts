/**
 * Routing in an HTTP fleet, end to end, with the run's redis-server and agent processes:
 *
 * - header affinity: three agents with `--redis`, each in front of its own plain HTTP service
 *   (the front's upstream fixture, in this process, recording what reached it). A client-chosen
 *   session id first seen at agent a is placed on a; the same header sent through b and c reaches
 *   a's service only, and none of the agents' `x-sessionfleet-*` headers reach a service.
 * - a stale owner: two agents in front of real MCP servers (`demo/mcp-server.ts`). The owner agent
 *   of a session is killed (SIGKILL: no goodbye, its lease just stops being renewed). Until its
 *   lease (10 s) runs out the other agent still takes it for the owner, cannot reach it and answers
 *   502; once it has run out, the session — not resumable, it lived in the dead instance's MCP
 *   server — gets the policy's expired status (404 for MCP) with the catalogue's body.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentProcess, spawnAgent, spawnListening, stopAll } from '../../helpers/http-agent-process.js';
import { freePort } from '../../helpers/redis-server.js';
import { startUpstream, type Upstream } from '../http/fixtures/upstream.js';
import { uniqueFleet } from './helpers.js';

const ADMIN_TOKEN = 'admin-token-http-routing-52e8af';
const HEADER_IDS = ['a', 'b', 'c'] as const;
type HeaderId = (typeof HEADER_IDS)[number];
const MCP_IDS = ['m1', 'm2'] as const;
type McpId = (typeof MCP_IDS)[number];

const services = {} as Record<HeaderId, Upstream>;
const headerAgents = {} as Record<HeaderId, AgentProcess>;
const mcpAgents = {} as Record<McpId, AgentProcess>;
const clients: Client[] = [];

async function fleetArgs(id: string, fleet: string): Promise<string[]> {
  const port = await freePort();
  return [
    ['--listen', `127.0.0.1:${port}`],
    ['--advertise', `http://127.0.0.1:${port}`],
    ['--instance-id', id],
    ['--redis', inject('redisUrl')],
    ['--fleet', fleet],
    ['--admin-token', ADMIN_TOKEN],
  ].flat();
}

beforeAll(async () => {
  const headerFleet = uniqueFleet();
  const mcpFleet = uniqueFleet();
  await Promise.all([
    ...HEADER_IDS.map(async (id) => {
      services[id] = await startUpstream();
      headerAgents[id] = await spawnAgent({
        policy: { affinity: { type: 'header', headerName: 'x-session' }, sessionsPerInstance: 5, maxInstances: 3 },
        upstream: services[id].url,
        args: await fleetArgs(id, headerFleet),
      });
    }),
    ...MCP_IDS.map(async (id) => {
      const server = await spawnListening('demo/mcp-server.ts');
      mcpAgents[id] = await spawnAgent({
        policy: { affinity: { type: 'mcp-streamable-http' }, sessionsPerInstance: 5, maxInstances: 2 },
        upstream: server.url,
        args: await fleetArgs(id, mcpFleet),
      });
    }),
  ]);
  await eventually(async () => (await liveInstances(headerAgents.a)) === 3, 10_000, 'three live');
  await eventually(async () => (await liveInstances(mcpAgents.m2)) === 2, 10_000, 'two live');
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
  await stopAll();
  await Promise.all(Object.values(services).map((s) => s.close()));
});

async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function adminGet(agent: AgentProcess, path: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${agent.adminUrl}${path}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return (await response.json()) as Record<string, unknown>;
}

async function liveInstances(agent: AgentProcess): Promise<number> {
  const { instances } = (await adminGet(agent, '/admin/fleet/instances')) as { instances: Array<{ alive: boolean }> };
  return instances.filter((i) => i.alive).length;
}

/** Which services a request with session `id` reached, with the headers it carried. */
function reached(id: string): Array<{ service: HeaderId; headers: Record<string, unknown> }> {
  return HEADER_IDS.flatMap((service) =>
    services[service].received
      .filter((r) => r.headers['x-session'] === id)
      .map((r) => ({ service, headers: r.headers as Record<string, unknown> })),
  );
}

describe('routing in an HTTP fleet (agents with --redis)', () => {
  it('header affinity: a client-chosen id first seen at a is served by a’s upstream through every agent', async () => {
    const id = `client-chosen-${Date.now()}`;
    for (const via of ['a', 'b', 'c', 'b', 'a'] as const) {
      const response = await fetch(`${headerAgents[via].url}/echo`, {
        method: 'POST',
        headers: { 'x-session': id, 'content-type': 'application/json' },
        body: JSON.stringify({ via }),
      });
      expect(response.status).toBe(200);
      expect(((await response.json()) as { headers: Record<string, string> }).headers['x-session']).toBe(id);
    }
    const hits = reached(id);
    expect(hits.map((h) => h.service)).toEqual(['a', 'a', 'a', 'a', 'a']);
    // The agents' own headers (the forwarding mark) stop at the owner agent.
    for (const { headers } of hits)
      expect(Object.keys(headers).filter((h) => h.startsWith('x-sessionfleet-'))).toEqual([]);
    const { sessions } = (await adminGet(headerAgents.c, '/admin/fleet/sessions')) as {
      sessions: Array<{ id: string; owner: string }>;
    };
    expect(sessions.filter((s) => s.id === id).map((s) => s.owner)).toEqual(['a']);
  });

  it('header affinity: a new id first seen at c is held by c, and a’s and b’s requests for it reach c', async () => {
    const id = `second-${Date.now()}`;
    for (const via of ['c', 'a', 'b'] as const) {
      const response = await fetch(`${headerAgents[via].url}/echo`, { headers: { 'x-session': id } });
      expect(response.status).toBe(200);
      await response.arrayBuffer();
    }
    expect(reached(id).map((h) => h.service)).toEqual(['c', 'c', 'c']);
  });

  it('a session whose (non-resumable) owner was killed gets 502 until the lease lapses, then the expired status', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(`${mcpAgents.m1.url}/mcp`));
    const client = new Client({ name: 'stale-owner', version: '1.0.0' });
    clients.push(client);
    await client.connect(transport);
    const sessionId = transport.sessionId!;
    const { sessions } = (await adminGet(mcpAgents.m2, '/admin/fleet/sessions')) as {
      sessions: Array<{ id: string; owner: string }>;
    };
    expect(sessions.map((s) => [s.id, s.owner])).toEqual([[sessionId, 'm1']]);

    await mcpAgents.m1.stop('SIGKILL');
    const call = () =>
      fetch(`${mcpAgents.m2.url}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': sessionId,
          'mcp-protocol-version': '2025-06-18',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      });

    // Right after the kill the lease still runs: the owner is unreachable.
    const unreachable = await call();
    expect(unreachable.status).toBe(502);
    expect(unreachable.headers.get('retry-after')).toBe('1');
    expect(await unreachable.json()).toEqual({
      jsonrpc: '2.0',
      error: {
        code: -31018,
        message: UNREACHABLE_MESSAGE,
        data: { code: 'UPSTREAM_UNAVAILABLE', status: 502, retryAfterSeconds: 1, cause: 'ECONNREFUSED' },
      },
      id: null,
    });

    // Once the lease has lapsed (10 s, bounded wait of 20 s): the expired status, as the MCP client expects.
    let last: Response | undefined;
    await eventually(
      async () => {
        last = await call();
        if (last.status === 502) await last.arrayBuffer();
        return last.status !== 502;
      },
      20_000,
      'the lease lapsed',
    );
    expect(last!.status).toBe(404);
    expect(await last!.json()).toEqual(EXPIRED_BODY);
    // And the same answer from then on (the record is gone, not merely unroutable).
    const again = await call();
    expect(again.status).toBe(404);
    expect(await again.json()).toEqual(EXPIRED_BODY);
  }, 40_000);
});

const UNREACHABLE_MESSAGE = 'the agent of the instance that holds this session is not answering: retry shortly';
/** The catalogue's answer for a session this fleet no longer has: the same as for an unknown id. */
const EXPIRED_BODY = {
  jsonrpc: '2.0',
  error: {
    code: -32001,
    message: 'Session not found: start a new session',
    data: { code: 'SESSION_NOT_FOUND', status: 404 },
  },
  id: null,
};
