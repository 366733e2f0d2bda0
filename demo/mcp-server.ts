/**
 * A small MCP server built on the real `@modelcontextprotocol/sdk`, serving both transports the
 * agent understands: Streamable HTTP at `/mcp` and the legacy SSE transport at `/sse` (+ POSTs
 * to `/messages?sessionId=`). `npm run demo` puts an agent in front of it; the end-to-end tests
 * run it as their upstream.
 *
 * Tools: `echo`, `sleep` (holds a request in flight), `whoami` (the session id the server sees).
 * `GET /debug/sessions` counts live sessions per transport; `GET /healthz` answers 200.
 *
 * Run: `npx tsx demo/mcp-server.ts [--port 0] [--host 127.0.0.1] [--stateless]`; prints one JSON
 * line `{"listening": {"host", "port"}}`.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

// The parts of Express's request and response used here (the project does not install @types/express).
type Request = IncomingMessage & { body?: unknown; query: Record<string, unknown> };
type Response = ServerResponse & { json(body: unknown): void; status(code: number): Response };

function buildServer(): McpServer {
  const server = new McpServer({ name: 'sessionfleet-demo', version: '1.0.0' });
  server.registerTool(
    'echo',
    { description: 'Returns its text.', inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: 'text', text }] }),
  );
  server.registerTool(
    'sleep',
    {
      description: 'Waits, then answers: a request that stays in flight.',
      inputSchema: { ms: z.number().int().min(0).max(60_000) },
    },
    async ({ ms }) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return { content: [{ type: 'text', text: `slept ${ms} ms` }] };
    },
  );
  server.registerTool('whoami', { description: 'The session id this server sees.' }, async (extra) => ({
    content: [{ type: 'text', text: extra.sessionId ?? 'stateless' }],
  }));
  return server;
}

export interface DemoMcpServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startDemoMcpServer(options: { host?: string; port?: number; stateless?: boolean } = {}) {
  const host = options.host ?? '127.0.0.1';
  // The SDK's Express helper: DNS-rebinding protection refuses any Host but localhost's own.
  const app = createMcpExpressApp({ host });
  const streamable = new Map<string, StreamableHTTPServerTransport>();
  const sse = new Map<string, SSEServerTransport>();

  app.get('/healthz', (_req: Request, res: Response) => {
    res.json({ ok: true });
  });
  app.get('/debug/sessions', (_req: Request, res: Response) => {
    res.json({ streamable: streamable.size, sse: sse.size });
  });

  app.all('/mcp', async (req: Request, res: Response) => {
    if (options.stateless) {
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      res.on('close', () => void transport.close());
      await buildServer().connect(transport);
      await transport.handleRequest(req, res, req.body);
      return;
    }
    const id = req.headers['mcp-session-id'];
    const known = typeof id === 'string' ? streamable.get(id) : undefined;
    if (known) {
      await known.handleRequest(req, res, req.body);
      return;
    }
    if (id !== undefined) {
      res.status(404).json({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
      return;
    }
    if (req.method !== 'POST' || !isInitializeRequest(req.body)) {
      res
        .status(400)
        .json({ jsonrpc: '2.0', error: { code: -32000, message: 'Bad Request: no session id' }, id: null });
      return;
    }
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (sessionId) => {
        streamable.set(sessionId, transport);
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) streamable.delete(transport.sessionId);
    };
    await buildServer().connect(transport);
    await transport.handleRequest(req, res, req.body);
  });

  app.get('/sse', async (_req: Request, res: Response) => {
    const transport = new SSEServerTransport('/messages', res);
    sse.set(transport.sessionId, transport);
    transport.onclose = () => {
      sse.delete(transport.sessionId);
    };
    await buildServer().connect(transport);
  });

  app.post('/messages', async (req: Request, res: Response) => {
    const id = req.query.sessionId;
    const transport = typeof id === 'string' ? sse.get(id) : undefined;
    if (!transport) {
      res.status(404).json({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
      return;
    }
    await transport.handlePostMessage(req, res, req.body);
  });

  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(options.port ?? 0, host, () => resolve(s));
    s.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    async close() {
      for (const t of [...streamable.values(), ...sse.values()]) await t.close().catch(() => {});
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  } satisfies DemoMcpServer;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const { values } = parseArgs({
    options: { port: { type: 'string' }, host: { type: 'string' }, stateless: { type: 'boolean' } },
  });
  const server = await startDemoMcpServer({
    port: Number(values.port ?? 0),
    host: values.host ?? '127.0.0.1',
    stateless: values.stateless ?? false,
  });
  process.stdout.write(`${JSON.stringify({ listening: { host: values.host ?? '127.0.0.1', port: server.port } })}\n`);
  const stop = () => void server.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
