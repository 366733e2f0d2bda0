/**
 * The reference MCP server the conformance proof runs against: `@modelcontextprotocol/server`
 * (SDK v2) on plain `node:http`, serving both revisions on one endpoint (`/mcp`):
 * - 2025-11-25, sessionful: `initialize` opens a session (a streamable HTTP transport of its own,
 *   GET stream, DELETE), as a 2025 server in a fleet behind the agent does;
 * - 2026-07-28, stateless: every request with the per-request `_meta` envelope is answered by a
 *   fresh server from the SDK's `createMcpHandler` (discover, multi-round, listen streams).
 * Host and Origin are checked first, as the SDK's own servers do for a loopback listener (the
 * suite's dns-rebinding-protection scenario).
 *
 * For a fleet, instances share what a horizontally scaled server must share: the key that seals
 * multi-round `requestState` (`--state-key`) and a change-event bus (`--redis`: Redis pub/sub, so
 * a listen stream on one instance hears a change published on another).
 *
 * Run as a process: `node --import tsx test/conformance/reference-server.ts [--port N]
 * [--state-key K] [--redis URL] [--instance-id ID]`; prints `{"listening": {"port": N}}`.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  createMcpHandler,
  createRequestStateCodec,
  hostHeaderValidationResponse,
  InMemoryServerEventBus,
  isLegacyRequest,
  localhostAllowedHostnames,
  localhostAllowedOrigins,
  originValidationResponse,
  type ServerEvent,
  type ServerEventBus,
  WebStandardStreamableHTTPServerTransport,
} from '@modelcontextprotocol/server';
import { Redis } from 'ioredis';
import { sendWebResponse } from '../helpers/web-bridge.js';
import { createReferenceServer, type FeatureContext } from './reference-features.js';
import { TaskStore } from './reference-tasks.js';

export interface ReferenceServerOptions {
  readonly host?: string;
  readonly port?: number;
  /** The `requestState` key (≥ 32 bytes); instances of one fleet share it. Default: random. */
  readonly stateKey?: string;
  /** Redis for the change-event bus shared by the instances of a fleet. Default: in process. */
  readonly redisUrl?: string;
  /** Names this instance in the `X-Reference-Instance` response header (which instance answered). */
  readonly instanceId?: string;
}

export interface ReferenceServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Change events over Redis pub/sub: what the SDK's `ServerEventBus` seam asks of a multi-process server. */
class RedisEventBus implements ServerEventBus {
  private readonly listeners = new Set<(event: ServerEvent) => void>();
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  constructor(
    url: string,
    private readonly channel: string,
  ) {
    this.publisher = new Redis(url, { lazyConnect: false });
    this.subscriber = new Redis(url, { lazyConnect: false });
    void this.subscriber.subscribe(channel);
    this.subscriber.on('message', (_channel, message: string) => {
      const event = JSON.parse(message) as ServerEvent;
      for (const listener of [...this.listeners]) listener(event);
    });
  }
  async ready(): Promise<void> {
    await this.subscriber.subscribe(this.channel);
    await this.publisher.ping();
  }
  publish(event: ServerEvent): void {
    void this.publisher.publish(this.channel, JSON.stringify(event));
  }
  subscribe(listener: (event: ServerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  async close(): Promise<void> {
    this.subscriber.disconnect();
    this.publisher.disconnect();
  }
}

/** A web `Request` for a Node request; the body streams through untouched. */
function toWebRequest(req: IncomingMessage, origin: string): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  return new Request(new URL(req.url ?? '/', origin), {
    method: req.method ?? 'GET',
    headers,
    ...(hasBody ? { body: Readable.toWeb(req) as ReadableStream, duplex: 'half' } : {}),
  } as RequestInit);
}

const jsonError = (status: number, code: number, message: string) =>
  new Response(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }), {
    status,
    headers: { 'content-type': 'application/json' },
  });

export async function startReferenceServer(options: ReferenceServerOptions = {}): Promise<ReferenceServer> {
  const state = createRequestStateCodec<Record<string, unknown>>({
    key: options.stateKey ?? randomBytes(32).toString('hex'),
  });
  const redisBus = options.redisUrl
    ? new RedisEventBus(options.redisUrl, 'sessionfleet:conformance:events')
    : undefined;
  await redisBus?.ready();
  const bus: ServerEventBus = redisBus ?? new InMemoryServerEventBus();
  const context: FeatureContext = { state, notify: () => modern.notify, tasks: new TaskStore() };
  const factory = () => createReferenceServer(context);
  const modern = createMcpHandler(factory, { legacy: 'reject', bus });

  // 2025-11-25 sessions: one transport and one server per session id, until DELETE or close.
  const sessions = new Map<string, WebStandardStreamableHTTPServerTransport>();
  async function legacy(request: Request): Promise<Response> {
    const sessionId = request.headers.get('mcp-session-id');
    if (sessionId) {
      const transport = sessions.get(sessionId);
      return transport ? transport.handleRequest(request) : jsonError(404, -32001, 'Session not found');
    }
    if (request.method !== 'POST') return jsonError(400, -32000, 'Bad Request: Mcp-Session-Id header is required');
    const body = (await request.clone().json()) as { method?: string };
    if (body?.method !== 'initialize') return jsonError(400, -32000, 'Bad Request: Mcp-Session-Id header is required');
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => void sessions.set(id, transport),
      onsessionclosed: (id) => void sessions.delete(id),
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    await factory().connect(transport);
    return transport.handleRequest(request);
  }

  const hosts = localhostAllowedHostnames();
  const origins = localhostAllowedOrigins();
  async function handle(request: Request): Promise<Response> {
    if (new URL(request.url).pathname !== '/mcp') return jsonError(404, -32600, 'Not found: the endpoint is /mcp');
    const refused = hostHeaderValidationResponse(request, hosts) ?? originValidationResponse(request, origins);
    if (refused) return refused;
    return (await isLegacyRequest(request)) ? legacy(request) : modern.fetch(request);
  }

  const server: Server = createServer((req, res) => {
    const origin = `http://${req.headers.host ?? 'localhost'}`;
    let request: Request;
    try {
      request = toWebRequest(req, origin);
    } catch {
      res.writeHead(400).end();
      return;
    }
    handle(request)
      .catch((error: unknown) => jsonError(500, -32603, error instanceof Error ? error.message : String(error)))
      .then((response) => {
        if (options.instanceId) res.setHeader('x-reference-instance', options.instanceId);
        return sendWebResponse(res, response);
      })
      .catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    port,
    async close() {
      await Promise.all([...sessions.values()].map((t) => t.close().catch(() => {})));
      await modern.close();
      await redisBus?.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      'state-key': { type: 'string' },
      redis: { type: 'string' },
      'instance-id': { type: 'string' },
    },
  });
  const server = await startReferenceServer({
    port: values.port ? Number(values.port) : 0,
    stateKey: values['state-key'],
    redisUrl: values.redis,
    instanceId: values['instance-id'],
  });
  console.log(JSON.stringify({ listening: { port: server.port } }));
  const stop = () => void server.close().finally(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
