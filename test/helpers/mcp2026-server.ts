/**
 * A reference MCP 2026-07-28 server for tests: the official SDK v2 (`@modelcontextprotocol/server`
 * `createMcpHandler`, which does the per-request version negotiation, `server/discover`, the
 * header–body checks and the 2025 stateless fallback) plus the Tasks extension
 * (`io.modelcontextprotocol/tasks`, SEP-2663), which SDK 2.4.0 does not ship: the tool
 * `start_task` answers `resultType: "task"`, and `tasks/get|update|cancel` are answered here from
 * this process's memory — a task lives on the instance that created it, as a real server's would.
 * The tasks themselves are the tests' one Tasks implementation (`TaskStore`, shared with the
 * conformance reference server); this file answers them on the wire before the SDK sees them.
 *
 * `start_task` with `{"stream": true}` answers over SSE (a progress event, then the result).
 * Other tools: `whoami` (this instance's name) and `echo`. Everything but the three task methods
 * and a `start_task` call goes to the SDK's handler unchanged.
 *
 * Run it as a child process (`node --import tsx test/helpers/mcp2026-server.ts [name] [ttlMs]`): it
 * prints `{"listening": {"port"}}` (see `spawnListening`), or in-process with `startMcp2026Server`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { createMcpHandler, McpServer, ProtocolError } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { HELD, TASKS_EXTENSION, TaskStore } from '../conformance/reference-tasks.js';
import { sendWebResponse, webRequestOf } from './web-bridge.js';

export { TASKS_EXTENSION };
export const MODERN_VERSION = '2026-07-28';

export interface Mcp2026Server {
  readonly url: string;
  readonly name: string;
  /** Every request that reached this server: its `Mcp-Method`, `Mcp-Name` and `Mcp-Session-Id` headers. */
  readonly seen: Array<{ method: string | undefined; name: string | undefined; sessionId: string | undefined }>;
  /** Forgets a task as a restart of the server would. */
  forgetTask(taskId: string): boolean;
  close(): Promise<void>;
}

export interface Mcp2026Options {
  /** This instance's name (`whoami`, error messages). @default 'mcp2026' */
  readonly name?: string;
  /** The `ttlMs` of the tasks it creates. @default 60000 */
  readonly ttlMs?: number;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * The answer as an SSE stream, as a server that emits a related message before its result does:
 * a progress notification, then the result, each event written on its own.
 */
function sendSse(res: ServerResponse, id: unknown, answer: Record<string, unknown>): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const progress = {
    jsonrpc: '2.0',
    method: 'notifications/progress',
    params: { progressToken: String(id), progress: 1 },
  };
  res.write(`event: message\ndata: ${JSON.stringify(progress)}\n\n`);
  setTimeout(() => res.end(`event: message\ndata: ${JSON.stringify(answer)}\n\n`), 20);
}

function parse(body: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

export async function startMcp2026Server(options: Mcp2026Options = {}): Promise<Mcp2026Server> {
  const name = options.name ?? 'mcp2026';
  const tasks = new TaskStore({ ttlMs: options.ttlMs ?? 60_000, pollIntervalMs: 100 });
  const seen: Mcp2026Server['seen'] = [];

  const handler = createMcpHandler(() => {
    const server = new McpServer({ name, version: '1.0.0' });
    server.registerTool('whoami', { description: 'the name of the instance that answers' }, () => ({
      content: [{ type: 'text', text: name }],
    }));
    server.registerTool(
      'echo',
      { description: 'echoes its text', inputSchema: z.object({ text: z.string() }) },
      ({ text }) => ({ content: [{ type: 'text', text }] }),
    );
    server.registerTool('start_task', { description: 'starts a task (Tasks extension)' }, () => ({
      content: [{ type: 'text', text: 'this client did not declare the Tasks extension; ran synchronously' }],
    }));
    return server;
  });

  /** The Tasks extension's part, for a modern request; undefined: the SDK answers. */
  const tasksAnswer = (message: Record<string, unknown>): Record<string, unknown> | undefined => {
    const method = message.method;
    const params = (message.params ?? {}) as Record<string, unknown>;
    const id = message.id;
    const taskId = params.taskId as string;
    try {
      if (method === 'tools/call' && params.name === 'start_task') {
        const meta = (params._meta ?? {}) as Record<string, unknown>;
        const caps = (meta['io.modelcontextprotocol/clientCapabilities'] ?? {}) as {
          extensions?: Record<string, unknown>;
        };
        if (!caps.extensions?.[TASKS_EXTENSION]) return undefined;
        // Completes shortly after, as a long computation would; `{"hold": true}` keeps it working
        // until cancelled.
        const hold = (params.arguments as { hold?: unknown } | undefined)?.hold === true;
        const done = () => ({ content: [{ type: 'text' as const, text: `done on ${name}` }], isError: false });
        return { jsonrpc: '2.0', id, result: tasks.create(hold ? HELD : 300, done) };
      }
      if (method === 'tasks/get') return { jsonrpc: '2.0', id, result: tasks.get(taskId) };
      if (method === 'tasks/update')
        return {
          jsonrpc: '2.0',
          id,
          result: tasks.update(taskId, (params.inputResponses ?? {}) as Record<string, unknown>),
        };
      if (method === 'tasks/cancel') return { jsonrpc: '2.0', id, result: tasks.cancel(taskId) };
      return undefined;
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      return { jsonrpc: '2.0', id: id ?? null, error: { code: error.code, message: error.message } };
    }
  };

  const http: Server = createServer((req, res) => {
    void (async () => {
      const body = req.method === 'POST' ? await readBody(req) : undefined;
      const header = (n: string) => {
        const v = req.headers[n];
        return typeof v === 'string' ? v : undefined;
      };
      seen.push({ method: header('mcp-method'), name: header('mcp-name'), sessionId: header('mcp-session-id') });
      const message = body ? parse(body) : undefined;
      // Only a well-formed modern request is answered here; the SDK does the negotiation for the rest.
      if (message && header('mcp-protocol-version') === MODERN_VERSION) {
        const params = (message.params ?? {}) as Record<string, unknown>;
        const method = message.method;
        const taskMethod = method === 'tasks/get' || method === 'tasks/update' || method === 'tasks/cancel';
        if (taskMethod && header('mcp-name') !== params.taskId) {
          return sendJson(res, 400, {
            jsonrpc: '2.0',
            id: message.id ?? null,
            error: { code: -32020, message: 'Header mismatch: Mcp-Name must equal params.taskId' },
          });
        }
        const answer = tasksAnswer(message);
        const args = (params.arguments ?? {}) as { stream?: unknown };
        if (answer && method === 'tools/call' && args.stream === true) return sendSse(res, message.id, answer);
        if (answer) return sendJson(res, 200, answer);
      }
      await sendWebResponse(res, await handler.fetch(webRequestOf(req, body ? { body } : {})));
    })().catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: String(error) });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    name,
    seen,
    forgetTask: (taskId) => tasks.forget(taskId),
    close: async () => {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await handler.close();
    },
  };
}

// As a child process: `node --import tsx test/helpers/mcp2026-server.ts [name] [ttlMs]`.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [name, ttl] = process.argv.slice(2);
  const server = await startMcp2026Server({
    ...(name ? { name } : {}),
    ...(ttl ? { ttlMs: Number(ttl) } : {}),
  });
  process.stdout.write(`${JSON.stringify({ listening: { port: Number(new URL(server.url).port) } })}\n`);
  process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
}
