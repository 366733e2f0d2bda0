/**
 * Open streams do not make requests slower (issue 18 §3): undici's `Pool` walks its clients on
 * every dispatch to find a free one, and an open stream keeps its client busy, so the streams go
 * through a pool of their own. Counted, not timed: with 5 or 40 GET streams open on the
 * requester's session, the pool a request walks holds the same one connection.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestAgent, type TestAgent, until } from './harness.js';

const LEGACY = '2025-06-18';
let upstream: Server;
let upstreamUrl: string;
const sessions = new Set<string>();
const streams = new Set<ServerResponse>();
const agents: TestAgent[] = [];
const clients = new Agent({ connections: null, bodyTimeout: 0 });

/** 2025 sessionful Streamable HTTP: initialize, pings, and any number of GET streams per session. */
beforeAll(async () => {
  upstream = createServer((req, res) => {
    const sessionId = req.headers['mcp-session-id'];
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      streams.add(res);
      res.on('close', () => streams.delete(res));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const message = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: number; method: string };
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (message.method === 'initialize') {
        const id = randomUUID();
        sessions.add(id);
        headers['mcp-session-id'] = id;
      } else if (typeof sessionId !== 'string' || !sessions.has(sessionId)) {
        res.writeHead(404, headers);
        return void res.end('{}');
      }
      if (message.id === undefined) {
        res.writeHead(202);
        return void res.end();
      }
      const result = message.method === 'initialize' ? { protocolVersion: LEGACY, capabilities: {} } : {};
      res.writeHead(200, headers);
      res.end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop();
});
afterAll(async () => {
  await clients.destroy();
  upstream.closeAllConnections();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

async function post(a: TestAgent, sessionId: string | undefined, body: unknown) {
  const response = await request(`${a.url}/mcp`, {
    method: 'POST',
    dispatcher: clients,
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(sessionId ? { 'mcp-session-id': sessionId, 'mcp-protocol-version': LEGACY } : {}),
    },
    body: JSON.stringify(body),
  });
  return {
    status: response.statusCode,
    sessionId: response.headers['mcp-session-id'] as string | undefined,
    text: await response.body.text(),
  };
}

/** Opens `count` GET streams on one session, sends pings on it; what the two pools held then. */
async function withStreams(count: number) {
  const a = await startTestAgent(
    { affinity: { type: 'mcp-streamable-http' }, limits: { streamsPerInstance: 100 } },
    upstreamUrl,
    [],
    { logLevel: 'warn' },
  );
  agents.push(a);
  const init = await post(a, undefined, {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: LEGACY, capabilities: {}, clientInfo: { name: 'pool-test', version: '1.0.0' } },
  });
  expect(init.status).toBe(200);
  const sessionId = init.sessionId!;
  await post(a, sessionId, { jsonrpc: '2.0', method: 'notifications/initialized' });
  const open = await Promise.all(
    Array.from({ length: count }, async () => {
      const response = await request(`${a.url}/mcp`, {
        method: 'GET',
        dispatcher: clients,
        headers: { accept: 'text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': LEGACY },
      });
      expect(response.statusCode).toBe(200);
      response.body.on('error', () => {});
      return response;
    }),
  );
  await until(() => streams.size === count, 10_000, `${count} streams upstream`);
  for (let id = 2; id < 22; id++) {
    const ping = await post(a, sessionId, { jsonrpc: '2.0', id, method: 'ping' });
    expect(ping.status).toBe(200);
    expect(ping.text).toContain('"result"');
  }
  const held = {
    requestConnections: a.front.pool.stats.connected,
    streamConnections: a.front.streamPool.stats.connected,
    openStreams: a.front.stats().openStreams,
  };
  for (const r of open) r.body.destroy();
  await until(() => streams.size === 0, 10_000, 'streams closed upstream');
  return held;
}

describe('open streams and the upstream pool requests use', () => {
  it('keeps the streams out of the pool a request walks: as many connections there with 40 streams as with 5', async () => {
    const few = await withStreams(5);
    const many = await withStreams(40);
    expect(few).toEqual({ requestConnections: 1, streamConnections: 5, openStreams: 5 });
    expect(many).toEqual({ requestConnections: 1, streamConnections: 40, openStreams: 40 });
  });
});
