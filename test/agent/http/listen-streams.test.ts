/**
 * MCP 2026-07-28 listen streams through one agent (issue 15, ADR 0015), against the official SDK
 * v2 on both ends: a `subscriptions/listen` gives its concurrency slot back once streaming and
 * counts against `limits.streamsPerInstance` instead, is bounded by the session lifetime and
 * idle rules, and is the first thing a drain closes.
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type McpV2Upstream, startMcpV2Upstream } from '../../helpers/mcp-v2-upstream.js';
import { startTestAgent, type TestAgent, until } from './harness.js';

let upstream: McpV2Upstream;
const agents: TestAgent[] = [];
const clients: Client[] = [];

beforeAll(async () => {
  upstream = await startMcpV2Upstream();
});
afterEach(async () => {
  upstream.release();
  for (const c of clients.splice(0)) await c.close().catch(() => {});
  for (const a of agents.splice(0)) await a.stop();
});
afterAll(async () => {
  await upstream.close();
});

async function agentWith(policy: Record<string, unknown>, args: string[] = []) {
  const a = await startTestAgent({ affinity: { type: 'mcp-streamable-http' }, ...policy }, upstream.url, args, {
    logLevel: 'warn',
  });
  agents.push(a);
  return a;
}

async function modernClient(a: TestAgent, headers: Record<string, string> = {}) {
  const client = new Client(
    { name: 'listen-test', version: '1.0.0' },
    { versionNegotiation: { mode: { pin: '2026-07-28' } } },
  );
  clients.push(client);
  await client.connect(new StreamableHTTPClientTransport(new URL(`${a.url}/mcp`), { requestInit: { headers } }));
  return client;
}

function listenRequest(id: number) {
  return {
    jsonrpc: '2.0',
    id,
    method: 'subscriptions/listen',
    params: {
      notifications: { toolsListChanged: true },
      _meta: {
        'io.modelcontextprotocol/protocolVersion': '2026-07-28',
        'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1.0.0' },
        'io.modelcontextprotocol/clientCapabilities': {},
      },
    },
  };
}

const LISTEN_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2026-07-28',
  'mcp-method': 'subscriptions/listen',
};

describe('subscriptions/listen through the agent', () => {
  it('two open listens at concurrencyPerInstance 2 leave room for a tools/call', async () => {
    const a = await agentWith({ concurrencyPerInstance: 2, sessionsPerInstance: 2 });
    const client = await modernClient(a);
    const first = await client.listen({ toolsListChanged: true });
    // Each listen resolves once the server acknowledged it on the open stream.
    const second = await client.listen({ toolsListChanged: true });

    const result = (await client.callTool({ name: 'echo', arguments: {} })) as { content: Array<{ text: string }> };
    expect(result.content[0]?.text).toBe('echo');
    expect(a.front.stats()).toMatchObject({ openStreams: 2, streamPlaces: 2, activeRequests: 0 });
    expect(a.agent.context.load.inFlight).toBe(0);

    await first.close();
    await second.close();
    await until(() => a.front.stats().streamPlaces === 0, 5000, 'the stream places given back');
  });

  it('counts open listens in sessionfleet_open_streams and per principal in the admin usage inventory', async () => {
    const a = await agentWith({ limits: { streamsPerPrincipal: 5 } }, [
      '--principal-header',
      'x-user',
      '--admin-token',
      'usage-token-5d1c',
    ]);
    const client = await modernClient(a, { 'x-user': 'alice' });
    const first = await client.listen({ toolsListChanged: true });
    const second = await client.listen({ toolsListChanged: true });
    const metrics = await (await fetch(`${a.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/^sessionfleet_open_streams\{[^}]*\} 2$/m);
    const usage = await fetch(`${a.adminUrl}/admin/usage`, {
      headers: { authorization: 'Bearer usage-token-5d1c' },
    }).then((r) => r.json());
    expect(usage).toMatchObject({ usage: [{ principal: 'alice', tenant: null, streams: 2, tasks: 0 }] });
    // Behind the admin token, like the rest of the admin API.
    expect((await fetch(`${a.adminUrl}/admin/usage`)).status).toBe(401);

    await first.close();
    await second.close();
    await until(() => a.front.stats().streamPlaces === 0, 5000, 'the stream places given back');
    const after = await (await fetch(`${a.adminUrl}/metrics`)).text();
    expect(after).toMatch(/^sessionfleet_open_streams\{[^}]*\} 0$/m);
  });

  it('refuses a listen past limits.streamsPerInstance with the catalogue error, before the upstream sees it', async () => {
    const a = await agentWith({ limits: { streamsPerInstance: 1 } });
    const client = await modernClient(a);
    const open = await client.listen({ toolsListChanged: true });
    const listensBefore = upstream.methods.filter((m) => m === 'subscriptions/listen').length;

    const response = await fetch(`${a.url}/mcp`, {
      method: 'POST',
      headers: LISTEN_HEADERS,
      body: JSON.stringify(listenRequest(7)),
    });
    expect(response.status).toBe(429);
    expect(response.headers.get('retry-after')).toBe('1');
    expect(await response.json()).toEqual({
      jsonrpc: '2.0',
      id: null,
      error: {
        code: -31040,
        message: 'this instance holds 1 open streams, its limit: close a stream you no longer need, or retry',
        data: {
          code: 'STREAM_LIMIT_REACHED',
          status: 429,
          retryAfterSeconds: 1,
          limit: 'streamsPerInstance',
          value: 1,
        },
      },
    });
    expect(upstream.methods.filter((m) => m === 'subscriptions/listen').length).toBe(listensBefore);
    // Ordinary requests are not streams: they still pass.
    await client.callTool({ name: 'echo', arguments: {} });
    await open.close();
  });

  it('closes a listen stream at the session lifetime', async () => {
    const a = await agentWith({ sessionLifetimeSeconds: 1, sessionIdleTimeoutSeconds: 1 });
    const client = await modernClient(a);
    const subscription = await client.listen({ toolsListChanged: true });
    expect(await subscription.closed).not.toBe('local');
    await until(() => a.front.stats().openStreams === 0, 5000, 'the stream gone');
  });

  it('a drain closes listen streams first and does not wait on them', async () => {
    const a = await agentWith({ drainTimeoutSeconds: 600 });
    const client = await modernClient(a);
    const subscription = await client.listen({ toolsListChanged: true });

    await a.front.drain();
    expect(await subscription.closed).not.toBe('local');
    expect(a.front.stats()).toMatchObject({ openStreams: 0, streamPlaces: 0, activeRequests: 0 });

    // A draining instance opens no new listen stream: the client listens on one that stays.
    const refused = await fetch(`${a.url}/mcp`, {
      method: 'POST',
      headers: LISTEN_HEADERS,
      body: JSON.stringify(listenRequest(8)),
    });
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { data: { code: string } } }).error.data.code).toBe('DRAINING');
  });
});
