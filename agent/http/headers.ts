/**
 * Header rewriting between client and upstream. Hop-by-hop headers stay on their hop (RFC 9110
 * §7.6.1); the upstream is addressed by its own `Host` (MCP servers refuse any other host as DNS
 * rebinding protection) and learns the original one from `X-Forwarded-Host`.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';

/** Never forwarded in either direction. `host` is replaced; `expect` is answered by the agent's own server. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'expect',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-request-id',
  // The fleet's agent-to-agent headers: only an agent sets them, never a client, never the upstream.
  'x-sessionfleet-forwarded-by',
  'x-sessionfleet-reservation',
  'x-sessionfleet-fencing-token',
]);

/** Headers named in `Connection` are hop-by-hop too. */
function connectionTokens(value: string | undefined): Set<string> | undefined {
  // The common values name no header: skip the parsing (this runs on every request).
  if (value === undefined || value === 'keep-alive' || value === 'close' || value === 'Keep-Alive') return undefined;
  const tokens = value
    .toLowerCase()
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '' && t !== 'close' && t !== 'keep-alive' && t !== 'upgrade');
  return tokens.length > 0 ? new Set(tokens) : undefined;
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Whether the client reached us over TLS, directly or through a proxy that says so. */
export function isSecure(req: IncomingMessage): boolean {
  if ((req.socket as TLSSocket).encrypted) return true;
  const proto = req.headers['x-forwarded-proto'];
  return typeof proto === 'string' && proto.split(',')[0]?.trim().toLowerCase() === 'https';
}

export interface ForwardedHeaderOptions {
  upstreamHost: string;
  requestId: string;
  /** Extra `name, value` pairs (the WebSocket handshake's `connection`/`upgrade`). */
  extra?: readonly string[];
  /** Keep the client's `Authorization` from this hop (JWT mode, to the upstream). */
  dropAuthorization?: boolean;
  /** With tracing on: the agent's span context, sent instead of the client's `traceparent`/`tracestate`. */
  trace?: { readonly traceparent: string; readonly tracestate?: string };
}

/**
 * The request headers for the upstream, as the flat `[name, value, ...]` list undici takes,
 * keeping the client's order, case and repeated headers.
 */
export function forwardedRequestHeaders(req: IncomingMessage, options: ForwardedHeaderOptions): string[] {
  const raw = req.rawHeaders;
  const dropped = connectionTokens(req.headers.connection);
  const dropAuthorization = options.dropAuthorization === true;
  const out: string[] = [];
  const trace = options.trace;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || dropped?.has(lower)) continue;
    if (dropAuthorization && lower === 'authorization') continue;
    if (trace && (lower === 'traceparent' || lower === 'tracestate')) continue;
    out.push(name, raw[i + 1]!);
  }
  if (trace) {
    out.push('traceparent', trace.traceparent);
    if (trace.tracestate) out.push('tracestate', trace.tracestate);
  }
  const headers = req.headers;
  const remote = req.socket.remoteAddress ?? '';
  const priorFor = headers['x-forwarded-for'];
  const originalHost = one(headers['x-forwarded-host']) ?? headers.host;
  const proto = one(headers['x-forwarded-proto']) ?? ((req.socket as TLSSocket).encrypted ? 'https' : 'http');
  out.push(
    'host',
    options.upstreamHost,
    'x-forwarded-for',
    priorFor ? `${priorFor}, ${remote}` : remote,
    'x-forwarded-proto',
    proto,
    'x-request-id',
    options.requestId,
  );
  if (originalHost !== undefined) out.push('x-forwarded-host', originalHost);
  if (options.extra) out.push(...options.extra);
  return out;
}

const RESPONSE_HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'x-sessionfleet-not-owner',
]);

/** The upstream's response headers for the client, without its hop-by-hop ones. */
export function forwardedResponseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const dropped = connectionTokens(typeof headers.connection === 'string' ? headers.connection : undefined);
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (RESPONSE_HOP_BY_HOP.has(name) || dropped?.has(name)) continue;
    out[name] = headers[name];
  }
  return out;
}

/** Adds a `Set-Cookie` to the upstream's own, if any. */
export function appendSetCookie(headers: OutgoingHttpHeaders, cookie: string): void {
  const prior = headers['set-cookie'];
  if (prior === undefined) headers['set-cookie'] = cookie;
  else if (Array.isArray(prior)) headers['set-cookie'] = [...prior, cookie];
  else headers['set-cookie'] = [String(prior), cookie];
}

/** The session cookie the agent inserts (SPEC.md §3, insert mode). */
export function sessionCookie(name: string, id: string, options: { secure: boolean; maxAgeSeconds: number }): string {
  return `${name}=${id}; Path=/; Max-Age=${options.maxAgeSeconds}; HttpOnly; SameSite=Lax${options.secure ? '; Secure' : ''}`;
}

/** Tells the client to drop a cookie that names no live session, so its retry gets a new one. */
export function clearedCookie(name: string, options: { secure: boolean }): string {
  return `${name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax${options.secure ? '; Secure' : ''}`;
}
