/**
 * The upstream of `bench/streams-memory.ts`, run as its own process (it prints
 * `{"listening": {"port"}}`, see `spawnListening`) so that its memory is not the agent's:
 *
 * - MCP 2026-07-28 requests (`MCP-Protocol-Version: 2026-07-28`) go to the official SDK v2
 *   (`createMcpHandler`, its `maxSubscriptions` raised from 1,024): it holds every `subscriptions/listen` stream itself, and
 *   `handler.notify.toolsChanged()` sends `notifications/tools/list_changed` on each of them.
 * - MCP 2025 sessionful Streamable HTTP is answered here, in the SDK's wire format: `initialize`
 *   mints an `Mcp-Session-Id`, a GET with it opens an SSE stream that stays open, DELETE ends the
 *   session. Unlike the SDK's transport, which answers a second GET stream on a session with
 *   409, a session may hold any number of GET streams: the agent holds at most 200 sessions
 *   (`sessionsPerInstance`), so 5,000 GET streams need several per session.
 *
 * Control, straight to this process (never through the agent): `POST /_notify` sends one
 * notification on every open stream of both eras and answers how many it wrote to;
 * `GET /_stats` answers the open stream counts.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import { sendWebResponse, webRequestOf } from '../test/helpers/web-bridge.js';

const MODERN = '2026-07-28';
const LEGACY = '2025-06-18';

const handler = createMcpHandler(
  () => {
    const server = new McpServer({ name: 'sessionfleet-stream-upstream', version: '1.0.0' });
    server.registerTool('echo', { description: 'answers at once' }, async () => ({
      content: [{ type: 'text', text: 'echo' }],
    }));
    return server;
  },
  // The SDK refuses listens past 1,024 by default ("Subscription limit reached").
  { maxSubscriptions: 100_000 },
);

const sessions = new Set<string>();
const getStreams = new Set<ServerResponse>();
let listenStreams = 0;
let notifications = 0;

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** The SDK's handler behind a `node:http` request: the response streams as the SDK writes it. */
async function modern(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
  const aborted = new AbortController();
  res.on('close', () => aborted.abort());
  const response = await handler.fetch(webRequestOf(req, { body, signal: aborted.signal }));
  const listen = req.headers['mcp-method'] === 'subscriptions/listen' && response.body !== null;
  if (listen) listenStreams++;
  try {
    await sendWebResponse(res, response);
  } finally {
    if (listen) listenStreams--;
  }
}

/** 2025-era sessionful Streamable HTTP, as the SDK's transport answers it. */
function legacy(req: IncomingMessage, res: ServerResponse, body: Buffer) {
  const sessionId = req.headers['mcp-session-id'];
  if (req.method === 'GET') {
    if (typeof sessionId !== 'string' || !sessions.has(sessionId)) return json(res, 404, { error: 'no such session' });
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'mcp-session-id': sessionId,
    });
    res.flushHeaders();
    getStreams.add(res);
    res.on('close', () => getStreams.delete(res));
    return;
  }
  if (req.method === 'DELETE') {
    if (typeof sessionId === 'string') sessions.delete(sessionId);
    return json(res, 200, {});
  }
  let message: { id?: unknown; method?: unknown };
  try {
    message = JSON.parse(body.toString('utf8')) as typeof message;
  } catch {
    return json(res, 400, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
  }
  if (message.method === 'initialize') {
    const id = randomUUID();
    sessions.add(id);
    return json(
      res,
      200,
      {
        jsonrpc: '2.0',
        id: message.id,
        result: {
          protocolVersion: LEGACY,
          capabilities: { logging: {} },
          serverInfo: { name: 'sessionfleet-stream-upstream', version: '1.0.0' },
        },
      },
      { 'mcp-session-id': id },
    );
  }
  if (typeof sessionId !== 'string' || !sessions.has(sessionId)) {
    return json(res, 404, { jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } });
  }
  if (message.id === undefined) {
    res.writeHead(202);
    return void res.end();
  }
  return json(res, 200, { jsonrpc: '2.0', id: message.id, result: {} });
}

function notifyAll(res: ServerResponse): void {
  notifications++;
  const event = {
    jsonrpc: '2.0',
    method: 'notifications/message',
    params: { level: 'info', data: `bench notification ${notifications}` },
  };
  const frame = `event: message\ndata: ${JSON.stringify(event)}\n\n`;
  for (const stream of getStreams) stream.write(frame);
  const listens = listenStreams;
  handler.notify.toolsChanged();
  json(res, 200, { get: getStreams.size, listen: listens });
}

const http = createServer((req, res) => {
  void (async () => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/_notify') return notifyAll(res);
    if (path === '/_stats')
      return json(res, 200, { get: getStreams.size, listen: listenStreams, sessions: sessions.size });
    const body = req.method === 'POST' ? await readBody(req) : Buffer.alloc(0);
    if (req.headers['mcp-protocol-version'] === MODERN) return modern(req, res, body);
    return legacy(req, res, body);
  })().catch((error: unknown) => {
    if (!res.headersSent) json(res, 500, { error: String(error) });
    else res.destroy();
  });
});
http.maxConnections = Number.POSITIVE_INFINITY;
http.listen(0, '127.0.0.1', () => {
  const { port } = http.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ listening: { port } })}\n`);
});
process.on('SIGTERM', () => {
  http.closeAllConnections();
  void handler.close().finally(() => process.exit(0));
});
