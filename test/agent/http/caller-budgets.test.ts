/**
 * `policy.limits` on MCP 2026-07-28 traffic through one agent (issue 15, ADR 0015): requests per
 * principal and per tool count stateless requests, which the session quotas never see. Real SDK
 * v2 clients and server on loopback.
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

async function agentWith(limits: Record<string, unknown>) {
  const a = await startTestAgent(
    { affinity: { type: 'mcp-streamable-http' }, limits },
    upstream.url,
    ['--principal-header', 'x-user', '--tenant-header', 'x-tenant'],
    { logLevel: 'warn' },
  );
  agents.push(a);
  return a;
}

async function clientOf(a: TestAgent, user: string, tenant = 'acme') {
  const client = new Client(
    { name: `budget-${user}`, version: '1.0.0' },
    { versionNegotiation: { mode: { pin: '2026-07-28' } } },
  );
  clients.push(client);
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${a.url}/mcp`), {
      requestInit: { headers: { 'x-user': user, 'x-tenant': tenant } },
    }),
  );
  return client;
}

/** The agent's refusal as the SDK client surfaces it: the JSON-RPC error body of the 429. */
async function refusal(call: Promise<unknown>): Promise<{ code: number; data: Record<string, unknown> }> {
  const error = await call.then(
    () => {
      throw new Error('the call was not refused');
    },
    (e: unknown) => e as Error,
  );
  const json = /\{.*\}/s.exec(error.message)?.[0];
  if (!json) throw new Error(`not an agent refusal: ${error.message}`);
  return (JSON.parse(json) as { error: { code: number; data: Record<string, unknown> } }).error;
}

describe('limits on 2026 traffic', () => {
  it('requestsPerPrincipal counts stateless requests: alice at her limit is refused, bob is not', async () => {
    const a = await agentWith({ requestsPerPrincipal: 1 });
    const alice = await clientOf(a, 'alice');
    const bob = await clientOf(a, 'bob');
    const held = alice.callTool({ name: 'hold', arguments: {} });
    await until(() => upstream.holding === 1, 5000, 'alice in flight');

    expect(await refusal(alice.callTool({ name: 'echo', arguments: {} }))).toEqual({
      code: -31041,
      message:
        'principal "alice" holds 1 requests, its requestsPerPrincipal (1): wait for one of your requests, tasks or streams to end',
      data: {
        code: 'PRINCIPAL_LIMIT_REACHED',
        status: 429,
        retryAfterSeconds: 1,
        limit: 'requestsPerPrincipal',
        value: 1,
        principal: 'alice',
        tenant: 'acme',
      },
    });
    await bob.callTool({ name: 'echo', arguments: {} });

    upstream.release();
    await held;
    await alice.callTool({ name: 'echo', arguments: {} });
  });

  it('requestsPerTenant counts every principal of the tenant', async () => {
    const a = await agentWith({ requestsPerTenant: 1 });
    const alice = await clientOf(a, 'alice', 'acme');
    const bob = await clientOf(a, 'bob', 'acme');
    const carol = await clientOf(a, 'carol', 'globex');
    const held = alice.callTool({ name: 'hold', arguments: {} });
    await until(() => upstream.holding === 1, 5000, 'alice in flight');
    const refused = await refusal(bob.callTool({ name: 'echo', arguments: {} }));
    expect(refused.data).toMatchObject({ code: 'TENANT_LIMIT_REACHED', limit: 'requestsPerTenant', tenant: 'acme' });
    await carol.callTool({ name: 'echo', arguments: {} });
    upstream.release();
    await held;
  });

  it('toolConcurrency limits one tool by Mcp-Method and Mcp-Name, not the others', async () => {
    const a = await agentWith({ toolConcurrency: { 'tools/call hold': 1 } });
    const alice = await clientOf(a, 'alice');
    const bob = await clientOf(a, 'bob');
    const held = alice.callTool({ name: 'hold', arguments: {} });
    await until(() => upstream.holding === 1, 5000, 'one hold in flight');
    const refused = await refusal(bob.callTool({ name: 'hold', arguments: {} }));
    expect(refused).toMatchObject({
      code: -31043,
      data: { code: 'TOOL_CONCURRENCY_REACHED', limit: 'toolConcurrency', tool: 'tools/call hold', value: 1 },
    });
    await bob.callTool({ name: 'echo', arguments: {} });
    upstream.release();
    await held;
    expect(a.front.stats().activeRequests).toBe(0);
  });
});
