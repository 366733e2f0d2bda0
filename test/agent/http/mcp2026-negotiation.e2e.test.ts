/**
 * The agent as a correct MCP 2026-07-28 intermediary (issue 15, items 4 and 5): it leaves version
 * negotiation to the server and ignores a stray `Mcp-Session-Id` on a modern request. One agent
 * (a process) in front of the reference server (SDK v2 2.4.0's `createMcpHandler` underneath,
 * in this process); every answer through the agent is compared with the server's own answer to
 * the same request sent directly.
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentProcess, spawnAgent, stopAll } from '../../helpers/http-agent-process.js';
import { type Mcp2026Server, MODERN_VERSION, startMcp2026Server } from '../../helpers/mcp2026-server.js';

let server: Mcp2026Server;
let agent: AgentProcess;
const clients: Client[] = [];

beforeAll(async () => {
  server = await startMcp2026Server({ name: 'negotiation' });
  agent = await spawnAgent({ policy: { affinity: { type: 'mcp-streamable-http' } }, upstream: server.url });
}, 30_000);

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
  await stopAll();
  await server.close();
});

function envelope(version: string) {
  return {
    'io.modelcontextprotocol/protocolVersion': version,
    'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1.0.0' },
    'io.modelcontextprotocol/clientCapabilities': {},
  };
}

/** POSTs `tools/list` with `headers` and a body whose envelope names `bodyVersion`. */
async function post(base: string, headers: Record<string, string>, bodyVersion: string) {
  const response = await fetch(`${base}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list', params: { _meta: envelope(bodyVersion) } }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** The same request directly and through the agent. */
async function both(headers: Record<string, string>, bodyVersion: string) {
  return { direct: await post(server.url, headers, bodyVersion), agent: await post(agent.url, headers, bodyVersion) };
}

describe('version negotiation is the server’s', () => {
  it('passes the server’s 400 -32022 {supported} for an unsupported version (v999.0.0)', async () => {
    const { direct, agent: through } = await both(
      { 'mcp-protocol-version': 'v999.0.0', 'mcp-method': 'tools/list' },
      'v999.0.0',
    );
    expect(direct.status).toBe(400);
    expect((direct.body.error as { code: number }).code).toBe(-32022);
    expect((direct.body.error as { data: { supported: string[] } }).data.supported).toContain(MODERN_VERSION);
    expect(through).toEqual(direct);
  });

  it('passes the server’s answer for a 2025 version header on a modern body', async () => {
    const { direct, agent: through } = await both({ 'mcp-protocol-version': '2025-11-25' }, MODERN_VERSION);
    expect(direct.status).toBe(400);
    expect(through).toEqual(direct);
  });

  it('passes the server’s answer for a modern body without a version header', async () => {
    const { direct, agent: through } = await both({}, MODERN_VERSION);
    expect(direct.status).toBe(400);
    expect(through).toEqual(direct);
  });

  it('ignores a stray Mcp-Session-Id on a modern request', async () => {
    const headers = { 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'tools/list', 'mcp-session-id': 'stray-1' };
    const { direct, agent: through } = await both(headers, MODERN_VERSION);
    expect(direct.status).toBe(200);
    expect(through).toEqual(direct);
    // Ignored, and not passed on: it cannot reach a session the agent never admitted this caller to.
    expect(server.seen.at(-1)).toEqual({ method: 'tools/list', name: undefined, sessionId: undefined });
  });
});

describe('an SDK v2 client (versionNegotiation auto) through the agent', () => {
  async function connect(headers: Record<string, string> = {}): Promise<Client> {
    const client = new Client({ name: 'negotiating', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
    clients.push(client);
    await client.connect(new StreamableHTTPClientTransport(new URL(`${agent.url}/mcp`), { requestInit: { headers } }));
    return client;
  }

  it('negotiates the modern era and calls a tool', async () => {
    const client = await connect();
    expect(client.getProtocolEra()).toBe('modern');
    expect(client.getNegotiatedProtocolVersion()).toBe(MODERN_VERSION);
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    expect(result.content).toEqual([{ type: 'text', text: 'negotiation' }]);
  });

  it('stays modern when every request carries a stray Mcp-Session-Id', async () => {
    const client = await connect({ 'mcp-session-id': 'stray-from-a-2025-cache' });
    expect(client.getProtocolEra()).toBe('modern');
    const result = await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
    expect(result.content).toEqual([{ type: 'text', text: 'hi' }]);
  });
});
