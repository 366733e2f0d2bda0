/**
 * End to end with real processes: the sample MCP server (`demo/mcp-server.ts`, real SDK, both
 * transports) behind a real agent process, driven by the SDK's own `Client` in this process.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type AgentProcess,
  type Spawned,
  spawnAgent,
  spawnListening,
  stopAll,
} from '../../helpers/http-agent-process.js';
import { freePort } from '../../helpers/redis-server.js';
import { until } from './harness.js';

const ADMIN_TOKEN = 'test-admin-token';
let server: Spawned & { url: string };
const clients: Client[] = [];

beforeAll(async () => {
  server = await spawnListening('demo/mcp-server.ts');
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close().catch(() => {});
});
afterAll(async () => {
  await stopAll();
});

function agent(policy: Record<string, unknown>, args: string[] = []): Promise<AgentProcess> {
  return spawnAgent({ policy, upstream: server.url, args: ['--admin-token', ADMIN_TOKEN, ...args] });
}

async function streamableClient(a: AgentProcess, headers: Record<string, string> = {}) {
  const transport = new StreamableHTTPClientTransport(new URL(`${a.url}/mcp`), { requestInit: { headers } });
  const client = new Client({ name: 'e2e', version: '1.0.0' });
  clients.push(client);
  await client.connect(transport);
  return { client, transport };
}

async function sseClient(a: AgentProcess) {
  const transport = new SSEClientTransport(new URL(`${a.url}/sse`));
  const client = new Client({ name: 'e2e-sse', version: '1.0.0' });
  clients.push(client);
  await client.connect(transport);
  return { client, transport };
}

async function whoami(client: Client): Promise<string> {
  const result = (await client.callTool({ name: 'whoami', arguments: {} })) as { content: Array<{ text: string }> };
  return result.content[0]?.text ?? '';
}

async function adminSessions(a: AgentProcess) {
  const response = await fetch(`${a.adminUrl}/admin/sessions`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return ((await response.json()) as { sessions: Array<{ id: string; inFlight: number; openStreams: number }> })
    .sessions;
}

async function serverSessions() {
  return (await (await fetch(`${server.url}/debug/sessions`)).json()) as { streamable: number; sse: number };
}

function failure(error: unknown) {
  return { code: (error as { code?: unknown }).code, message: (error as Error).message };
}

describe('MCP Streamable HTTP through the agent', () => {
  it('routes each client to its own session, refuses a new one beyond the quota with 429, and takes it after a DELETE', async () => {
    const a = await agent({ affinity: { type: 'mcp-streamable-http' }, sessionsPerInstance: 2 });
    const first = await streamableClient(a);
    const second = await streamableClient(a);
    expect(await whoami(first.client)).toBe(first.transport.sessionId);
    expect(await whoami(second.client)).toBe(second.transport.sessionId);
    expect(first.transport.sessionId).not.toBe(second.transport.sessionId);

    const refused = await streamableClient(a).catch(failure);
    expect(refused).toMatchObject({ code: 429 });
    expect(JSON.parse((refused as { message: string }).message.replace(/^.*?Error POSTing to endpoint: /, ''))).toEqual(
      {
        jsonrpc: '2.0',
        error: {
          code: -31010,
          message: 'this instance holds its maximum of 2 sessions: back off and retry',
          data: { code: 'SESSION_LIMIT_REACHED', status: 429, sessionsPerInstance: 2, retryAfterSeconds: 60 },
        },
        id: null,
      },
    );

    await first.transport.terminateSession();
    const third = await streamableClient(a);
    expect(await whoami(third.client)).toBe(third.transport.sessionId);
    expect((await adminSessions(a)).map((s) => s.id).sort()).toEqual(
      [second.transport.sessionId, third.transport.sessionId].sort(),
    );
  });

  it('expires a session at its lifetime: 404 with a JSON-RPC body, the server is told, and a new initialize works', async () => {
    const a = await agent({
      affinity: { type: 'mcp-streamable-http' },
      sessionLifetimeSeconds: 2,
      sessionIdleTimeoutSeconds: 2,
    });
    const before = (await serverSessions()).streamable;
    const { client, transport } = await streamableClient(a);
    const oldId = transport.sessionId;
    expect(await whoami(client)).toBe(oldId);

    let refusal: { code: unknown; message: string } | undefined;
    await until(
      async () => {
        refusal = await whoami(client).then(() => undefined, failure);
        return refusal !== undefined;
      },
      10_000,
      'the session to expire',
    );
    expect(refusal?.code).toBe(404);
    expect(JSON.parse(refusal?.message.replace(/^.*?Error POSTing to endpoint: /, '') ?? '')).toEqual({
      jsonrpc: '2.0',
      error: {
        code: -32001,
        message: 'Session expired: the session reached its lifetime: start a new session',
        data: { code: 'SESSION_EXPIRED', status: 404, reason: 'expired-lifetime' },
      },
      id: null,
    });
    // The agent deleted the session on the server too.
    await until(async () => (await serverSessions()).streamable === before, 5000, 'the server to drop the session');

    const fresh = await streamableClient(a);
    expect(fresh.transport.sessionId).not.toBe(oldId);
    expect(await whoami(fresh.client)).toBe(fresh.transport.sessionId);
  });

  it('frees the slot of a session the server forgot (it restarted): the client re-initializes', async () => {
    const port = await freePort();
    let own = await spawnListening('demo/mcp-server.ts', ['--port', String(port)]);
    const a = await spawnAgent({
      policy: { affinity: { type: 'mcp-streamable-http' }, sessionsPerInstance: 1 },
      upstream: own.url,
      args: ['--admin-token', ADMIN_TOKEN],
    });
    const { client, transport } = await streamableClient(a);
    expect(await whoami(client)).toBe(transport.sessionId);
    await own.stop();
    own = await spawnListening('demo/mcp-server.ts', ['--port', String(port)]);

    // The server's own 404 passes through, and the agent ends the session with it.
    const forgotten = await whoami(client).then(() => undefined, failure);
    expect(forgotten?.code).toBe(404);
    expect(await adminSessions(a)).toEqual([]);
    const again = await whoami(client).then(() => undefined, failure);
    expect(JSON.parse(again?.message.replace(/^.*?Error POSTing to endpoint: /, '') ?? '')).toEqual({
      jsonrpc: '2.0',
      error: {
        code: -32001,
        message: 'Session expired: the server behind the agent ended it: start a new session',
        data: { code: 'SESSION_EXPIRED', status: 404, reason: 'upstream-closed' },
      },
      id: null,
    });
    // Its slot is free again: the one-session instance takes a new one.
    const fresh = await streamableClient(a);
    expect(await whoami(fresh.client)).toBe(fresh.transport.sessionId);
  });

  it('answers an unknown session id with 404 and the JSON-RPC body MCP clients re-initialize on', async () => {
    const a = await agent({ affinity: { type: 'mcp-streamable-http' } });
    const response = await fetch(`${a.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': 'no-such-session',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({
      jsonrpc: '2.0',
      error: {
        code: -32001,
        message: 'Session not found: start a new session',
        data: { code: 'SESSION_NOT_FOUND', status: 404 },
      },
      id: null,
    });
  });

  it('throttles requests beyond concurrencyPerInstance with 429 over all sessions, and recovers', async () => {
    const a = await agent({
      affinity: { type: 'mcp-streamable-http' },
      sessionsPerInstance: 2,
      concurrencyPerInstance: 2,
    });
    const { client } = await streamableClient(a);
    // The standalone GET stream is open (it holds no slot), so only the tool calls count.
    await until(async () => (await adminSessions(a))[0]?.openStreams === 1, 5000, 'the GET stream');
    const calls = await Promise.allSettled(
      [1, 2, 3].map(() => client.callTool({ name: 'sleep', arguments: { ms: 800 } })),
    );
    const rejected = calls
      .filter((c): c is PromiseRejectedResult => c.status === 'rejected')
      .map((c) => failure(c.reason));
    expect(calls.filter((c) => c.status === 'fulfilled')).toHaveLength(2);
    expect(rejected).toHaveLength(1);
    expect(rejected[0]?.code).toBe(429);
    expect(rejected[0]?.message).toContain('"code":"CONCURRENCY_LIMIT_REACHED"');
    expect(await client.callTool({ name: 'sleep', arguments: { ms: 1 } })).toEqual({
      content: [{ type: 'text', text: 'slept 1 ms' }],
    });
  });

  it('binds a session to its principal: another principal gets 403, none at all 401', async () => {
    const a = await agent({ affinity: { type: 'mcp-streamable-http' } }, ['--principal-header', 'x-user']);
    const { client, transport } = await streamableClient(a, { 'x-user': 'alice' });
    expect(await whoami(client)).toBe(transport.sessionId);
    const as = (user: string | undefined) =>
      fetch(`${a.url}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': transport.sessionId ?? '',
          'mcp-protocol-version': '2025-06-18',
          ...(user ? { 'x-user': user } : {}),
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' }),
      });
    const bob = await as('bob');
    expect(bob.status).toBe(403);
    expect(await bob.json()).toEqual({
      jsonrpc: '2.0',
      error: {
        code: -31013,
        message: 'this session belongs to another principal: use a session you created',
        data: { code: 'SESSION_FORBIDDEN', status: 403 },
      },
      id: null,
    });
    const nobody = await as(undefined);
    expect(nobody.status).toBe(401);
    expect(((await nobody.json()) as { error: { data: unknown } }).error.data).toEqual({
      code: 'UNAUTHENTICATED',
      status: 401,
      header: 'x-user',
    });
    expect((await as('alice')).status).toBe(200);
  });

  it('holds each principal to sessionsPerPrincipal without Redis: 429 with the fleet’s JSON-RPC error, a DELETE frees the place', async () => {
    const a = await agent(
      { affinity: { type: 'mcp-streamable-http' }, sessionsPerInstance: 10, sessionsPerPrincipal: 1 },
      ['--principal-header', 'x-user'],
    );
    const quotaBody = {
      jsonrpc: '2.0',
      error: {
        code: -31012,
        message:
          'principal "alice" holds 1 sessions, the sessionsPerPrincipal quota (1): end one of your sessions first',
        data: {
          code: 'PRINCIPAL_QUOTA_REACHED',
          status: 429,
          quota: 'sessionsPerPrincipal',
          limit: 1,
          principal: 'alice',
        },
      },
      id: null,
    };
    const refusal = (error: unknown) => {
      const { code, message } = failure(error);
      return { code, body: JSON.parse(message.replace(/^.*?Error POSTing to endpoint: /, '')) as unknown };
    };
    const alice = await streamableClient(a, { 'x-user': 'alice' });
    expect(await whoami(alice.client)).toBe(alice.transport.sessionId);
    expect(await streamableClient(a, { 'x-user': 'alice' }).catch(refusal)).toEqual({ code: 429, body: quotaBody });

    const bob = await streamableClient(a, { 'x-user': 'bob' });
    expect(await whoami(bob.client)).toBe(bob.transport.sessionId);

    await alice.transport.terminateSession();
    const again = await streamableClient(a, { 'x-user': 'alice' });
    expect(await whoami(again.client)).toBe(again.transport.sessionId);
    expect((await adminSessions(a)).map((s) => s.id).sort()).toEqual(
      [bob.transport.sessionId, again.transport.sessionId].sort(),
    );
  });

  it('counts an initialize in flight against the principal’s quota: of concurrent ones, one gets the last place', async () => {
    const a = await agent(
      { affinity: { type: 'mcp-streamable-http' }, sessionsPerInstance: 10, sessionsPerPrincipal: 2 },
      ['--principal-header', 'x-user'],
    );
    await streamableClient(a, { 'x-user': 'carol' });
    const outcomes = await Promise.allSettled([1, 2, 3, 4].map(() => streamableClient(a, { 'x-user': 'carol' })));
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    for (const o of outcomes) if (o.status === 'rejected') expect(failure(o.reason).code).toBe(429);
    expect(await adminSessions(a)).toHaveLength(2);
  });

  it('refuses the legacy SSE transport with a message naming the configured one', async () => {
    const a = await agent({ affinity: { type: 'mcp-streamable-http' } });
    const refused = await sseClient(a).catch(failure);
    expect(refused).toMatchObject({ code: 400 });
    const response = await fetch(`${a.url}/sse`, { headers: { accept: 'text/event-stream' } });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { message: string } }).error.message).toBe(
      'this agent is configured for MCP Streamable HTTP (affinity.type "mcp-streamable-http"), and this GET without Mcp-Session-Id opens a legacy SSE stream; POST an initialize instead: use the transport the agent is configured for',
    );
  });

  it('passes a stateless server (no Mcp-Session-Id) through without sessions', async () => {
    const stateless = await spawnListening('demo/mcp-server.ts', ['--stateless']);
    const a = await spawnAgent({ policy: { affinity: { type: 'mcp-streamable-http' } }, upstream: stateless.url });
    const { client, transport } = await streamableClient(a);
    expect(transport.sessionId).toBeUndefined();
    expect(await client.callTool({ name: 'echo', arguments: { text: 'no session' } })).toEqual({
      content: [{ type: 'text', text: 'no session' }],
    });
    const metrics = await (await fetch(`${a.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/^sessionfleet_active_sessions\{instance_id="test-agent"\} 0$/m);
  });
});

describe('MCP over SSE through the agent', () => {
  it('learns the session from the endpoint event, routes the POSTs, and ends the session with its stream', async () => {
    const a = await agent({ affinity: { type: 'mcp-sse' }, sessionsPerInstance: 1 });
    const { client } = await sseClient(a);
    const id = await whoami(client);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await adminSessions(a)).map((s) => ({ id: s.id, openStreams: s.openStreams }))).toEqual([
      { id, openStreams: 1 },
    ]);

    // One session per instance: a second stream is refused with 429.
    const refused = await sseClient(a).catch(failure);
    expect(refused).toMatchObject({ code: 429 });

    await client.close();
    await until(async () => (await adminSessions(a)).length === 0, 5000, 'the session to end with its stream');
    const next = await sseClient(a);
    expect(await whoami(next.client)).not.toBe(id);
  });

  it('follows a client that reconnects after its stream dropped: the new stream names a new session', async () => {
    const a = await agent({ affinity: { type: 'mcp-sse' } });
    const { client } = await sseClient(a);
    const first = await whoami(client);
    // The operator ends the session; the agent closes its stream; the client's EventSource reconnects.
    const terminated = await fetch(`${a.adminUrl}/admin/sessions/${first}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(terminated.status).toBe(200);
    let second = first;
    await until(
      async () => {
        second = await whoami(client).catch(() => first);
        return second !== first;
      },
      15_000,
      'the client on a new session',
    );
    expect((await adminSessions(a)).map((s) => s.id)).toEqual([second]);
  });

  it('answers a POST for an unknown session with 404, and refuses Streamable HTTP naming the configured transport', async () => {
    const a = await agent({ affinity: { type: 'mcp-sse' } });
    const unknown = await fetch(`${a.url}/messages?sessionId=nope`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({
      jsonrpc: '2.0',
      error: {
        code: -32001,
        message: 'Session not found: start a new session',
        data: { code: 'SESSION_NOT_FOUND', status: 404 },
      },
      id: null,
    });
    const refused = await streamableClient(a).catch(failure);
    expect(refused).toMatchObject({ code: 400 });
    expect((refused as { message: string }).message).toContain(
      'this agent is configured for MCP over SSE (affinity.type \\"mcp-sse\\", stream at /sse)',
    );
  });
});
