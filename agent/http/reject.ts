/**
 * Turns a catalogue error (`core/errors.ts`) into what the client receives: status, `Retry-After`,
 * and a JSON body — the catalogue's HTTP body, or for the MCP transports a JSON-RPC error response
 * (`{"jsonrpc":"2.0","error":{...},"id":null}`) that MCP clients already understand.
 */
import { type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { JwtConfig } from '../core/config.js';
import type { AgentError } from '../core/errors.js';
import { wwwAuthenticate } from '../core/jwt.js';

export interface RenderOptions {
  jsonRpc: boolean;
  expiredSessionStatus: number;
  requestId: string;
  /** `Set-Cookie` values to send with the rejection (clearing a dead session cookie). */
  setCookie?: string;
  /** JWT mode: what a 401 for a missing or invalid token says in `WWW-Authenticate`. */
  challenge?: (error: AgentError) => string | undefined;
}

export interface RenderedError {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export function renderError(error: AgentError, options: RenderOptions): RenderedError {
  const status = error.status(options.expiredSessionStatus);
  const body = options.jsonRpc
    ? { jsonrpc: '2.0', error: error.toJsonRpcError(options.expiredSessionStatus), id: null }
    : error.toHttpBody(options.expiredSessionStatus);
  const text = JSON.stringify(body);
  const headers: Record<string, string> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    'x-request-id': options.requestId,
  };
  if (error.retryAfterSeconds !== undefined) headers['retry-after'] = String(error.retryAfterSeconds);
  if (options.setCookie) headers['set-cookie'] = options.setCookie;
  const challenge = status === 401 ? options.challenge?.(error) : undefined;
  if (challenge) headers['www-authenticate'] = challenge;
  return { status, headers, body: text };
}

/** Answers an ordinary request with the error (its body, if any, is left unread and the socket kept). */
export function sendError(res: ServerResponse, rendered: RenderedError): void {
  if (res.headersSent) {
    // Too late for a status: the client sees the response cut short, which is the truth.
    res.destroy();
    return;
  }
  res.writeHead(rendered.status, rendered.headers);
  res.end(rendered.body);
}

/** Answers an `Upgrade` request on its raw socket, then closes it. */
export function sendErrorOnSocket(socket: Duplex, rendered: RenderedError): void {
  if (socket.destroyed) return;
  const lines = [`HTTP/1.1 ${rendered.status} ${STATUS_CODES[rendered.status] ?? ''}`];
  for (const [name, value] of Object.entries(rendered.headers)) lines.push(`${name}: ${value}`);
  lines.push('connection: close', '', rendered.body);
  socket.end(lines.join('\r\n'));
}

/**
 * JWT mode: the `WWW-Authenticate` of a 401 that is about the bearer token (RFC 6750, RFC 9728),
 * so a real MCP client finds the authorization server; other 401s (a session cookie) carry none.
 */
export function challengeFor(jwt: JwtConfig): (error: AgentError) => string | undefined {
  return (error) =>
    error.code === 'UNAUTHENTICATED' || error.code === 'INVALID_TOKEN' ? wwwAuthenticate(jwt, error) : undefined;
}
