/**
 * How a request is tied to its session (SPEC.md §3), decided from the request line and headers
 * alone: which session id it names, whether it asks for a new session, or why it is refused.
 * Pure: no I/O, no clock, no session table, so it can be fuzzed in-process.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { AgentError } from '../core/errors.js';
import { isValidSessionId } from '../core/session-id.js';
import type { HttpAffinity } from './options.js';

export interface RequestFacts {
  readonly method: string;
  /** The path without the query string. */
  readonly path: string;
  /** The query string without `?`, or ''. */
  readonly query: string;
  readonly headers: IncomingHttpHeaders;
  /** An HTTP/1.1 `Upgrade` request (WebSocket). */
  readonly upgrade: boolean;
}

/** What the session table must do with a session id it does not hold. */
export type WhenMissing =
  /** header affinity: the client chooses its ids, a first-seen one starts a session */
  | 'create'
  /** MCP: only the server assigns ids; unknown or ended → the expired status */
  | 'reject'
  /** cookie affinity: only the agent mints ids; unknown or ended → 401, retry without it */
  | 'reject-cookie'
  /** a principal's pin (MCP 2026 under session isolation): unknown or ended → placed anew */
  | 'resume';

export type Route =
  /** No session: quotas and concurrency still apply. */
  | { readonly kind: 'stateless' }
  | { readonly kind: 'session'; readonly id: string; readonly whenMissing: WhenMissing }
  /** cookie affinity without the cookie: the agent mints an id and sets the cookie. */
  | { readonly kind: 'mint-cookie' }
  /** mcp-streamable-http POST without `Mcp-Session-Id`: the body tells whether it is an `initialize`. */
  | { readonly kind: 'mcp-sessionless-post' }
  /** mcp-sse: the stream that announces the session id in its `endpoint` event. */
  | { readonly kind: 'sse-open' }
  | { readonly kind: 'reject'; readonly error: AgentError; readonly clearCookie?: boolean };

export interface ClassifyContext {
  readonly affinity: HttpAffinity;
  /** The upstream answered an `initialize` without a session id: it keeps no sessions. */
  readonly statelessUpstream: boolean;
}

/** Visible ASCII, 1–128 characters: what an MCP server may announce in its SSE `endpoint` event. */
const ANNOUNCED_SESSION_ID = /^[\x21-\x7e]{1,128}$/;
/** RFC 6265 cookie-octets (visible ASCII but `"` `,` `;` `\`), 1–128 of them. */
const COOKIE_VALUE = /^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{1,128}$/;

// The rule for ids a client names is the agent's one rule, shared with the Copilot front.
export { isValidSessionId };

/** MCP revisions from this date on have no `initialize` and no session id: every request stands alone. */
export const STATELESS_MCP_REVISION = '2026-07-28';

const STREAMABLE = 'MCP Streamable HTTP (affinity.type "mcp-streamable-http")';

function sseName(ssePath: string) {
  return `MCP over SSE (affinity.type "mcp-sse", stream at ${ssePath})`;
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  // Node joins repeated headers with ", " (which fails the id rule); only set-cookie is an array.
  return Array.isArray(value) ? value.join(', ') : value;
}

/** `sessionId` of a query string: undefined if absent, null if repeated. */
export function sessionIdParam(query: string): string | null | undefined {
  if (query === '' || !query.includes('sessionId')) return undefined;
  const all = new URLSearchParams(query).getAll('sessionId');
  if (all.length === 0) return undefined;
  return all.length === 1 ? all[0] : null;
}

export type CookieLookup =
  | { readonly state: 'absent' }
  | { readonly state: 'present'; readonly value: string }
  | { readonly state: 'invalid'; readonly why: string };

/** Finds one cookie in a `Cookie` header. Two cookies of the same name are refused, not guessed between. */
export function findCookie(header: string | undefined, name: string): CookieLookup {
  if (header === undefined || !header.includes(name)) return { state: 'absent' };
  let found: string | undefined;
  let count = 0;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    count++;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    found = value;
  }
  if (count === 0 || found === undefined) return { state: 'absent' };
  if (count > 1) return { state: 'invalid', why: `the cookie ${name} is sent ${count} times` };
  if (!COOKIE_VALUE.test(found)) return { state: 'invalid', why: `the cookie ${name} is malformed` };
  return { state: 'present', value: found };
}

function reject(error: AgentError, clearCookie = false): Route {
  return clearCookie ? { kind: 'reject', error, clearCookie } : { kind: 'reject', error };
}

function acceptsEventStream(headers: IncomingHttpHeaders): boolean {
  const accept = headers.accept;
  return typeof accept === 'string' && accept.includes('text/event-stream');
}

function classifyStreamable(facts: RequestFacts, context: ClassifyContext): Route {
  if (facts.upgrade) {
    return reject(
      new AgentError('WRONG_TRANSPORT', `this agent is configured for ${STREAMABLE}; WebSocket upgrades are refused`),
    );
  }
  const id = headerValue(facts.headers, 'mcp-session-id');
  if (id !== undefined) {
    if (!isValidSessionId(id)) {
      return reject(
        new AgentError('INVALID_SESSION_ID', 'the Mcp-Session-Id header is not a valid session id', {
          details: { header: 'mcp-session-id' },
        }),
      );
    }
    return { kind: 'session', id, whenMissing: 'reject' };
  }
  if (sessionIdParam(facts.query) !== undefined) {
    return reject(
      new AgentError(
        'WRONG_TRANSPORT',
        `this agent is configured for ${STREAMABLE}, and this is a legacy SSE transport request (?sessionId=); POST an initialize without a session id instead`,
        { details: { configured: 'mcp-streamable-http' } },
      ),
    );
  }
  // Stateless servers (and the revision without sessions) need no affinity; quotas still apply.
  if (context.statelessUpstream || isStatelessRevision(facts.headers)) return { kind: 'stateless' };
  if (facts.method === 'POST') return { kind: 'mcp-sessionless-post' };
  if (facts.method === 'GET' && acceptsEventStream(facts.headers)) {
    return reject(
      new AgentError(
        'WRONG_TRANSPORT',
        `this agent is configured for ${STREAMABLE}, and this GET without Mcp-Session-Id opens a legacy SSE stream; POST an initialize instead`,
        { details: { configured: 'mcp-streamable-http' } },
      ),
    );
  }
  if (facts.method === 'DELETE') return missingMcpSessionId();
  // OPTIONS (CORS preflight), HEAD, plain GETs (discovery documents): no session involved.
  return { kind: 'stateless' };
}

export function missingMcpSessionId(): Route {
  return reject(
    new AgentError('SESSION_ID_REQUIRED', 'the Mcp-Session-Id header is required on every request but initialize', {
      details: { header: 'mcp-session-id' },
    }),
  );
}

function classifySse(facts: RequestFacts, ssePath: string): Route {
  const wrong = (what: string) =>
    reject(
      new AgentError('WRONG_TRANSPORT', `this agent is configured for ${sseName(ssePath)}; ${what}`, {
        details: { configured: 'mcp-sse', ssePath },
      }),
    );
  if (facts.upgrade) return wrong('WebSocket upgrades are refused');
  if (facts.headers['mcp-session-id'] !== undefined) {
    return wrong('this is a Streamable HTTP request (Mcp-Session-Id); open the SSE stream instead');
  }
  const id = sessionIdParam(facts.query);
  if (id === null) {
    return reject(new AgentError('INVALID_SESSION_ID', 'the sessionId query parameter is given more than once'));
  }
  if (id !== undefined) {
    if (!isValidSessionId(id)) {
      return reject(
        new AgentError('INVALID_SESSION_ID', 'the sessionId query parameter is not a valid session id', {
          details: { parameter: 'sessionId' },
        }),
      );
    }
    return { kind: 'session', id, whenMissing: 'reject' };
  }
  if (facts.path === ssePath) {
    return facts.method === 'GET' ? { kind: 'sse-open' } : wrong(`open the stream with GET ${ssePath}`);
  }
  if (facts.method === 'POST' || facts.method === 'DELETE') {
    return wrong(
      `this ${facts.method} carries no sessionId: it looks like Streamable HTTP. Open GET ${ssePath} and POST to the endpoint it announces`,
    );
  }
  return { kind: 'stateless' };
}

function classifyHeader(facts: RequestFacts, headerName: string): Route {
  const name = headerName.toLowerCase();
  const value = headerValue(facts.headers, name);
  if (value === undefined) {
    return reject(
      new AgentError('SESSION_ID_REQUIRED', `the ${headerName} header is required`, {
        details: { header: headerName },
      }),
    );
  }
  if (!isValidSessionId(value)) {
    return reject(
      new AgentError('INVALID_SESSION_ID', `the ${headerName} header is not a valid session id`, {
        details: { header: headerName },
      }),
    );
  }
  return { kind: 'session', id: value, whenMissing: 'create' };
}

function classifyCookie(facts: RequestFacts, cookieName: string): Route {
  const cookie = findCookie(headerValue(facts.headers, 'cookie'), cookieName);
  if (cookie.state === 'absent') return { kind: 'mint-cookie' };
  if (cookie.state === 'invalid') {
    return reject(new AgentError('INVALID_COOKIE', cookie.why, { details: { cookie: cookieName } }), true);
  }
  return { kind: 'session', id: cookie.value, whenMissing: 'reject-cookie' };
}

/** Decides what a request asks for. Never throws. */
export function classify(facts: RequestFacts, context: ClassifyContext): Route {
  const affinity = context.affinity;
  switch (affinity.type) {
    case 'mcp-streamable-http':
      return classifyStreamable(facts, context);
    case 'mcp-sse':
      return classifySse(facts, affinity.ssePath);
    case 'header':
      return classifyHeader(facts, affinity.headerName);
    case 'cookie':
      return classifyCookie(facts, affinity.cookieName);
    case 'none':
      return { kind: 'stateless' };
  }
}

/**
 * Whether a JSON-RPC body (one message or a batch) contains an `initialize` request. Anything
 * that does not parse is not an initialize.
 */
export function containsInitialize(body: string): boolean {
  if (!body.includes('initialize')) return false;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return false;
  }
  const messages = Array.isArray(parsed) ? parsed : [parsed];
  return messages.some(
    (m) => typeof m === 'object' && m !== null && (m as { method?: unknown }).method === 'initialize',
  );
}

/** Whether the client speaks an MCP revision without sessions (no `initialize`, no session id). */
export function isStatelessRevision(headers: IncomingHttpHeaders): boolean {
  const version = headerValue(headers, 'mcp-protocol-version');
  return version !== undefined && /^\d{4}-\d{2}-\d{2}$/.test(version) && version >= STATELESS_MCP_REVISION;
}

/**
 * The session id announced by a legacy SSE `endpoint` event: its data is a URL (usually relative,
 * `/messages?sessionId=<id>`) whose `sessionId` parameter is the id.
 */
export function sessionIdFromEndpoint(data: string): string | undefined {
  let url: URL;
  try {
    url = new URL(data.trim(), 'http://endpoint.invalid');
  } catch {
    return undefined;
  }
  const all = url.searchParams.getAll('sessionId');
  // What the server announced; a client naming it is held to `isValidSessionId`.
  return all.length === 1 && ANNOUNCED_SESSION_ID.test(all[0]!) ? all[0] : undefined;
}
