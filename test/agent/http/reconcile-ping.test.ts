/**
 * The reconcile's question to an MCP server (ADR 0022), against the real SDK in this process (the
 * demo server): a JSON-RPC `ping` with the session's id. Only the server's own "not found" ends a
 * session; a 404 page from a wrong path, or an error, is no answer.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeHttpFrontOptions } from '../../../agent/http/options.js';
import { pingUpstreamSession } from '../../../agent/http/upstream.js';
import { type DemoMcpServer, startDemoMcpServer } from '../../../demo/mcp-server.js';
import { validatePolicy } from '../../../policy/index.js';

let mcp: DemoMcpServer;
let broken: Server;
let brokenUrl: string;

beforeAll(async () => {
  mcp = await startDemoMcpServer();
  broken = createServer((_req, res) => {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end('{"jsonrpc":"2.0","error":{"code":-32603,"message":"internal"},"id":null}');
  });
  await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', resolve));
  brokenUrl = `http://127.0.0.1:${(broken.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await mcp.close();
  await new Promise<void>((resolve) => broken.close(() => resolve()));
});

function ask(url: string, session: { id: string; path: string }) {
  const policy = validatePolicy({ affinity: { type: 'mcp-streamable-http' } });
  if (!policy.ok) throw new Error('policy');
  const settings = normalizeHttpFrontOptions(policy.policy, {
    upstream: new URL(url),
    principalHeader: undefined,
    tenantHeader: undefined,
    limits: undefined,
    jwt: undefined,
  });
  const pool = new Pool(settings.upstreamOrigin);
  return pingUpstreamSession(pool, settings, session, AbortSignal.timeout(5000)).finally(() => pool.close());
}

async function initialize(): Promise<string> {
  const response = await fetch(`${mcp.url}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'reconcile-ping', version: '1' } },
    }),
  });
  await response.text();
  const id = response.headers.get('mcp-session-id');
  if (!id) throw new Error(`no session id (${response.status})`);
  return id;
}

describe('pingUpstreamSession', () => {
  it('says held for a session the server holds, and gone once the server ended it', async () => {
    const id = await initialize();
    expect(await ask(mcp.url, { id, path: '/mcp' })).toBe('held');
    const deleted = await fetch(`${mcp.url}/mcp`, { method: 'DELETE', headers: { 'mcp-session-id': id } });
    expect(deleted.status).toBe(200);
    expect(await ask(mcp.url, { id, path: '/mcp' })).toBe('gone');
  });

  it('gives no answer for a 404 that is not the server\'s "not found" (a wrong path) or for an error', async () => {
    const id = await initialize();
    expect(await ask(mcp.url, { id, path: '/elsewhere' })).toBe('unanswered');
    expect(await ask(brokenUrl, { id, path: '/mcp' })).toBe('unanswered');
    // The session was not touched by any of it.
    expect(await ask(mcp.url, { id, path: '/mcp' })).toBe('held');
  });
});
