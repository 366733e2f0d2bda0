/**
 * Property-based fuzzing of the HTTP front through real sockets: raw requests with generated
 * methods, paths, affinity headers, cookies, session ids, principals and stray headers. Whatever
 * arrives, the agent never answers 5xx itself (the upstream here always answers 200), never
 * crashes, never holds anything once the requests are done, and never lets a request reach the
 * upstream under a session that is not live or belongs to another principal — checked by the
 * upstream against the agent's own session table at the moment the request arrives.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionTable } from '../../../agent/core/sessions.js';
import { startTestAgent, type TestAgent } from './harness.js';

type Affinity = 'header' | 'cookie' | 'mcp-streamable-http';
const PRINCIPAL_HEADER = 'x-user';
const COOKIE = 'sid';

/** This run's pool ids (`~1`..`~4`) → the session ids the agent or the server handed out. */
let pool: Record<string, string> = {};

/** Remembers an id the answer handed out (cookie minted, MCP session created) under a free pool name. */
function learn(text: string): void {
  const id = /\r\nset-cookie: sid=([^;\r]+)/i.exec(text)?.[1] ?? /\r\nmcp-session-id: ([^\r]+)/i.exec(text)?.[1];
  if (!id) return;
  const free = ['~1', '~2', '~3', '~4'].find((name) => pool[name] === undefined);
  if (free) pool[free] = id;
}

/** What the upstream saw that it should not have. */
const violations: string[] = [];
let table: SessionTable | undefined;
let mode: Affinity = 'header';
let upstream: Server;
let upstreamUrl: string;

function sessionIdSeen(req: IncomingMessage): string | undefined {
  if (mode === 'header') return req.headers['x-affinity'] as string | undefined;
  if (mode === 'mcp-streamable-http') return req.headers['mcp-session-id'] as string | undefined;
  const match = /(?:^|;\s*)sid=([^;]*)/.exec(req.headers.cookie ?? '');
  return match?.[1]?.replace(/^"(.*)"$/, '$1');
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const id = sessionIdSeen(req);
    const principal = req.headers[PRINCIPAL_HEADER];
    // The agent's own DELETE of a session it ended is the one request that names a dead session.
    const fromAgent = req.headers['user-agent'] === 'sessionfleet-agent';
    if (id !== undefined && !fromAgent) {
      const session = table?.get(id);
      if (!session)
        violations.push(
          `${req.method} ${req.url} reached the upstream for session ${JSON.stringify(id)}, which is not live`,
        );
      else if (session.principal !== principal) {
        violations.push(`session ${JSON.stringify(id)} of ${session.principal} reached by ${String(principal)}`);
      }
    }
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => {
      const headers: Record<string, string> = { 'content-type': 'text/plain' };
      if (mode === 'mcp-streamable-http' && id === undefined && body.includes('"initialize"')) {
        headers['mcp-session-id'] = randomUUID();
      }
      res.writeHead(200, headers);
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
afterAll(async () => {
  upstream.closeAllConnections();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

/** Sends raw bytes on a fresh connection; returns the final statuses and the raw answer. */
function rawRequest(port: number, bytes: Buffer): Promise<{ statuses: number[]; text: string }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.setTimeout(5000, () => socket.destroy());
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1])).filter((s) => s >= 200);
      resolve({ statuses, text });
    });
    socket.write(bytes);
  });
}

// Generators

const visible = fc.string({
  unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
  minLength: 1,
  maxLength: 12,
});
const anyText = fc.string({ unit: 'binary', maxLength: 20 }).map((s) => s.replace(/[\r\n]/g, ''));
/**
 * Session ids: mostly a small pool (so requests meet the same sessions; `~n` is made unique per
 * run when encoded), then odd but valid ones, then invalid ones.
 */
const sessionId = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom('~1', '~2', '~3', '~4') },
  { weight: 2, arbitrary: visible },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', 'a b', 'x'.repeat(128), 'x'.repeat(129), 'a,b', 'é', 'a\tb') },
  { weight: 1, arbitrary: anyText },
);
const principal = fc.oneof(
  { weight: 14, arbitrary: fc.constantFrom('alice', 'bob') },
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: anyText },
);
const target = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom('/', '/echo', '/mcp', '/mcp?x=1', '/a/b/../c') },
  { weight: 3, arbitrary: fc.webPath().map((p) => p || '/') },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.webPath(), fc.webQueryParameters()).map(([p, q]) => `${p || '/'}?${q}`),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom('/sse', '/messages', '*', 'http://evil.example/x', '//double', '/%zz', '/a?b#c'),
  },
  { weight: 1, arbitrary: sessionId.map((id) => `/messages?sessionId=${encodeURIComponent(id)}`) },
  {
    weight: 1,
    arbitrary: fc
      .string({ unit: fc.constantFrom('/', 'a', '%', '?', '#', '.', ' ', 'é', '\u0000', ';', '=', '&'), maxLength: 16 })
      .map((s) => `/${s}`),
  },
);
const method = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('GET', 'POST') },
  { weight: 2, arbitrary: fc.constantFrom('DELETE', 'PUT', 'OPTIONS', 'HEAD', 'PATCH') },
);
const strayHeader = fc.tuple(
  fc.constantFrom(
    'connection-token',
    'x-forwarded-for',
    'x-forwarded-host',
    'x-forwarded-proto',
    'x-request-id',
    'expect',
    'te',
    'keep-alive',
    'upgrade',
    'accept',
    'mcp-protocol-version',
    'proxy-authorization',
    'trailer',
    'x-affinity',
    'mcp-session-id',
    'cookie',
  ),
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        '100-continue',
        'https',
        'text/event-stream',
        'trailers',
        'websocket',
        '2026-07-28',
        'close',
        'x, y',
      ),
    },
    { weight: 1, arbitrary: anyText },
  ),
);

const INITIALIZE = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}';

interface FuzzRequest {
  method: string;
  target: string;
  id: string | undefined;
  cookieForm: 'plain' | 'quoted' | 'twice' | 'other-name';
  principal: string | undefined;
  stray: Array<[string, string]>;
  body: string;
}

const fuzzRequest: fc.Arbitrary<FuzzRequest> = fc.record({
  method,
  target,
  id: fc.option(sessionId, { nil: undefined, freq: 4 }),
  cookieForm: fc.constantFrom('plain', 'quoted', 'twice', 'other-name'),
  principal,
  stray: fc.array(strayHeader, { maxLength: 2 }),
  body: fc.oneof(
    { weight: 2, arbitrary: fc.constant('') },
    { weight: 3, arbitrary: fc.constant(INITIALIZE) },
    { weight: 2, arbitrary: fc.constant('{"jsonrpc":"2.0","id":2,"method":"tools/list"}') },
    { weight: 1, arbitrary: anyText },
  ),
});

function encode(affinity: Affinity, request: FuzzRequest, run: number): Buffer {
  let r = request;
  let id = r.id;
  if (id?.startsWith('~')) {
    if (pool[id] !== undefined) id = pool[id];
    else if (affinity === 'header') id = `run${run}-${id.slice(1)}`;
    else {
      // Cookie and MCP ids are handed out, not chosen: a pool id not handed out yet asks for one.
      id = undefined;
      if (affinity === 'mcp-streamable-http') r = { ...r, method: 'POST', body: INITIALIZE };
    }
  }
  const lines = [`${r.method} ${r.target} HTTP/1.1`, 'Host: fuzz.example', 'Connection: close'];
  if (id !== undefined) {
    if (affinity === 'header') lines.push(`x-affinity: ${id}`);
    if (affinity === 'mcp-streamable-http') lines.push(`mcp-session-id: ${id}`);
    if (affinity === 'cookie') {
      const value = r.cookieForm === 'quoted' ? `"${id}"` : id;
      const name = r.cookieForm === 'other-name' ? 'sidx' : COOKIE;
      lines.push(`cookie: a=1; ${name}=${value}${r.cookieForm === 'twice' ? `; ${COOKIE}=s1` : ''}`);
    }
  }
  if (r.principal !== undefined) lines.push(`${PRINCIPAL_HEADER}: ${r.principal}`);
  for (const [name, value] of r.stray) lines.push(`${name === 'connection-token' ? 'connection' : name}: ${value}`);
  if (affinity === 'mcp-streamable-http') lines.push('accept: application/json, text/event-stream');
  const body = Buffer.from(r.body, 'latin1');
  lines.push(`content-length: ${body.length}`, '', '');
  return Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), body]);
}

const POLICIES: Record<Affinity, Record<string, unknown>> = {
  header: { affinity: { type: 'header', headerName: 'x-affinity' }, sessionsPerInstance: 3, concurrencyPerInstance: 4 },
  cookie: { affinity: { type: 'cookie', cookieName: COOKIE }, sessionsPerInstance: 3 },
  'mcp-streamable-http': { affinity: { type: 'mcp-streamable-http' }, sessionsPerInstance: 3 },
};

describe.each(['header', 'cookie', 'mcp-streamable-http'] as const)('fuzzing %s affinity', (affinity) => {
  let agent: TestAgent;

  beforeAll(async () => {
    // The requests name fuzz.example as their Host: a loopback agent serves only the names it is told.
    agent = await startTestAgent(
      POLICIES[affinity],
      upstreamUrl,
      ['--principal-header', PRINCIPAL_HEADER, '--allowed-hosts', 'fuzz.example'],
      {
        logLevel: 'warn',
      },
    );
    table = agent.agent.context.sessions;
    mode = affinity;
    violations.length = 0;
  });
  afterAll(async () => {
    await agent.stop();
  });

  it('never answers 5xx, never routes into a session that is not live or not the caller’s, never leaks', async () => {
    const port = agent.agent.client.port;
    const sessions = agent.agent.context.sessions;
    let run = 0;
    const statusCounts = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(fc.array(fuzzRequest, { minLength: 1, maxLength: 8 }), async (requests) => {
        // Each run starts with free slots and its own pool of ids.
        run++;
        pool = {};
        for (const s of sessions.list()) sessions.end(s.id, 'deleted');
        for (const r of requests) {
          const { statuses, text } = await rawRequest(port, encode(affinity, r, run));
          learn(text);
          for (const status of statuses) statusCounts.set(status, (statusCounts.get(status) ?? 0) + 1);
          // Node's own parser may refuse the bytes (400/413/431...); nobody may answer 5xx or not at all.
          expect(statuses.length, `no answer to ${JSON.stringify(r)}`).toBeGreaterThan(0);
          for (const status of statuses) expect(status, JSON.stringify(r)).toBeLessThan(500);
        }
        expect(violations).toEqual([]);
      }),
      { numRuns: 150 },
    );
    // The runs reached the upstream and met every kind of refusal, or they proved little.
    expect(statusCounts.get(200) ?? 0).toBeGreaterThan(100);
    expect(statusCounts.get(400) ?? 0).toBeGreaterThan(20);
    // Whatever was thrown at it, nothing stays held, and the agent still serves.
    expect(agent.front.stats()).toMatchObject({
      activeRequests: 0,
      openStreams: 0,
      streamPlaces: 0,
      pendingReservations: 0,
      tunnels: 0,
    });
    expect(agent.agent.context.load.inFlight).toBe(0);
    for (const session of agent.agent.context.sessions.list()) expect(session.inFlight).toBe(0);
    const health = await fetch(`${agent.adminUrl}/healthz`);
    expect(health.status).toBe(200);
  });
});
