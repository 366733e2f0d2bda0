/**
 * `isolation: "session"` for MCP 2026-07-28 traffic (issue 15 item 3, ADR 0015): the principal is
 * the unit. A principal's stateless requests are pinned to one instance that serves no other
 * principal, and the pin ends like a session (idle timeout, lifetime), so `recycleAfterSession`
 * fires. SDK v2 clients and server through one agent.
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type McpV2Upstream, startMcpV2Upstream } from '../../helpers/mcp-v2-upstream.js';
import { startTestAgent, type TestAgent } from './harness.js';

let upstream: McpV2Upstream;
const agents: TestAgent[] = [];
const clients: Client[] = [];

beforeAll(async () => {
  upstream = await startMcpV2Upstream();
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close().catch(() => {});
  for (const a of agents.splice(0)) await a.stop();
});
afterAll(async () => {
  await upstream.close();
});

async function isolatedAgent(policy: Record<string, unknown> = {}) {
  const a = await startTestAgent(
    { affinity: { type: 'mcp-streamable-http' }, isolation: 'session', ...policy },
    upstream.url,
    ['--principal-header', 'x-user'],
    { logLevel: 'warn' },
  );
  agents.push(a);
  return a;
}

async function clientOf(a: TestAgent, user: string) {
  const client = new Client({ name: `iso-${user}`, version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
  clients.push(client);
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${a.url}/mcp`), { requestInit: { headers: { 'x-user': user } } }),
  );
  return client;
}

async function echo(client: Client): Promise<string> {
  const result = (await client.callTool({ name: 'echo', arguments: {} })) as { content: Array<{ text: string }> };
  return result.content[0]?.text ?? '';
}

describe('session isolation, MCP 2026', () => {
  it("an instance that serves alice's stateless requests serves no other principal's", async () => {
    const a = await isolatedAgent();
    const alice = await clientOf(a, 'alice');
    expect(await echo(alice)).toBe('echo');
    expect(await echo(alice)).toBe('echo');
    const sessions = a.agent.context.sessions.list();
    expect(sessions.map((s) => s.principal)).toEqual(['alice']);

    const bob = await clientOf(a, 'bob').then(
      (c) => echo(c).then(() => 'served'),
      (error: Error) => error.message,
    );
    expect(bob).toContain('SESSION_LIMIT_REACHED');
    expect(await echo(alice)).toBe('echo');
  });

  it('recycleAfterSession replaces the instance once its principal went idle', async () => {
    const a = await isolatedAgent({ recycleAfterSession: true, sessionIdleTimeoutSeconds: 1 });
    const alice = await clientOf(a, 'alice');
    expect(await echo(alice)).toBe('echo');
    // The pin ends at the idle timeout; the agent then drains and stops (the platform replaces it).
    await a.agent.stopped;
    expect(a.agent.context.sessions.size).toBe(0);
  });
});
