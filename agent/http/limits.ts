/**
 * What one HTTP request may cost the agent (ADR 0017), enforced by node:http's own mechanisms
 * where it has them — `headersTimeout`, `requestTimeout` (the whole request, body included),
 * `maxHeaderSize`, `maxConnections` — and answered as the agent's JSON errors instead of node's
 * bare status lines: 408 REQUEST_TIMEOUT, 431 HEADERS_TOO_LARGE, 413 PAYLOAD_TOO_LARGE (bodies:
 * `Content-Length` checked on arrival, chunked bodies counted as they stream), 405 for `CONNECT`.
 * A refused request's connection is closed: its unread rest is never read.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { AGENT_LIMIT_DEFAULTS } from '../../policy/agent-interface.js';
import type { ConnectionLimits } from '../core/config.js';
import { AgentError } from '../core/errors.js';
import type { Refusals } from '../core/refusals.js';
import { renderError, sendErrorOnSocket } from './reject.js';

export type HttpLimits = ConnectionLimits['http'];

/** What the front forwards; `CONNECT` is not among them (405 names these in `Allow`). */
export const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';

export function httpLimits(limits: ConnectionLimits | undefined): HttpLimits {
  return limits?.http ?? AGENT_LIMIT_DEFAULTS.http;
}

/**
 * node:http options for the limits. Node checks its timeouts every `connectionsCheckingInterval`
 * (30 s by default); a quarter of the shorter timeout, at most a second, keeps a refusal close to
 * its limit for a cost of one walk over the open connections.
 */
export function serverOptions(limits: HttpLimits): ServerOptions {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    maxHeaderSize: limits.maxHeaderBytes,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
  };
}

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`the request body is larger than ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

export function bodyTooLarge(limit: number, declared?: number): AgentError {
  const what = declared === undefined ? 'the request body' : `the request body (Content-Length ${declared})`;
  return new AgentError('PAYLOAD_TOO_LARGE', `${what} is larger than ${limit} bytes`, { details: { limit } });
}

/** A declared `Content-Length` above the limit, as a number; undefined when within it or absent. */
export function declaredTooLarge(req: IncomingMessage, limit: number): number | undefined {
  const length = req.headers['content-length'];
  if (length === undefined) return undefined;
  const n = Number(length);
  return Number.isFinite(n) && n > limit ? n : undefined;
}

/** Counts a streamed body and fails it with `BodyTooLargeError` past `limit`. */
class BodyLimit extends Transform {
  private seen = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) callback(new BodyTooLargeError(this.limit));
    else callback(null, chunk);
  }
}

/**
 * The body as it goes upstream, held to `limit`: bytes are checked now, a stream whose length
 * was declared is already held by node's parser to that length (checked on arrival), any other
 * stream is counted. Returns the error when bytes are already too many.
 */
export function limitedBody(
  body: Readable | Buffer | null,
  req: IncomingMessage,
  limit: number,
): Readable | Buffer | null | AgentError {
  if (body === null) return null;
  if (Buffer.isBuffer(body)) return body.length > limit ? bodyTooLarge(limit) : body;
  if (body === req && req.headers['content-length'] !== undefined) return body;
  return body.pipe(new BodyLimit(limit));
}

/** The request in flight on each socket, for answering its timeout through its own response. */
export interface InFlight {
  readonly res: ServerResponse;
  readonly requestId: string;
  readonly isDone: boolean;
  reject(error: AgentError, setCookie?: string): void;
}

export interface LimitsHost {
  readonly refusals: Refusals;
  readonly jsonRpc: boolean;
  readonly expiredSessionStatus: number;
  inFlight(socket: Socket): InFlight | undefined;
}

/**
 * Answers what node:http refuses before or beside a request handler: a timeout (headers or
 * body), a header block too large, a request it cannot parse, a `CONNECT`, a connection over
 * `maxConnections`. Each is counted and logged once (`Refusals`).
 */
export function installLimits(server: Server, limits: HttpLimits, host: LimitsHost): void {
  const idPrefix = randomBytes(4).toString('hex');
  let counter = 0;
  const render = (error: AgentError, requestId: string) =>
    renderError(error, { jsonRpc: host.jsonRpc, expiredSessionStatus: host.expiredSessionStatus, requestId });

  server.maxConnections = limits.maxConnections;
  server.on('drop', (data?: { remoteAddress?: string }) => {
    host.refusals.refuse(
      'connection-limit',
      { remote: data?.remoteAddress, limit: limits.maxConnections },
      'dropped an HTTP connection: --http-max-connections are open',
    );
  });

  server.on('connect', (req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => {});
    host.refusals.refuse(
      'connect-method',
      { remote: socket.remoteAddress, target: String(req.url).slice(0, 200) },
      'refused an HTTP CONNECT',
    );
    const rendered = render(
      new AgentError('METHOD_NOT_ALLOWED', 'CONNECT is not served: this agent is a reverse proxy, not a tunnel', {
        details: { method: 'CONNECT' },
      }),
      `${idPrefix}-c${(++counter).toString(36)}`,
    );
    rendered.headers.allow = ALLOWED_METHODS;
    sendErrorOnSocket(socket, rendered);
    setTimeout(() => socket.destroy(), 2000).unref();
  });

  server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    const code = err.code ?? '';
    if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) {
      socket.destroy();
      return;
    }
    const inFlight = host.inFlight(socket);
    const live = inFlight && !inFlight.isDone ? inFlight : undefined;
    let error: AgentError;
    if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      // node reports both timeouts alike: with a request handed over, it was its body that was late.
      const headers = live === undefined;
      const ms = headers ? limits.headersTimeoutMs : limits.requestTimeoutMs;
      host.refusals.refuse(
        headers ? 'headers-timeout' : 'request-timeout',
        { remote: socket.remoteAddress, ...(live ? { reqId: live.requestId } : {}), timeoutMs: ms },
        headers ? 'closing an HTTP connection: headers too slow' : 'closing an HTTP connection: request body too slow',
      );
      error = new AgentError(
        'REQUEST_TIMEOUT',
        headers
          ? `the request headers did not arrive within ${ms} ms`
          : `the request (headers and body) did not arrive within ${ms} ms`,
        { details: { timeoutMs: ms } },
      );
    } else if (code === 'HPE_HEADER_OVERFLOW') {
      host.refusals.refuse(
        'headers-too-large',
        { remote: socket.remoteAddress, limit: limits.maxHeaderBytes },
        'refused an HTTP request: header block too large',
      );
      error = new AgentError(
        'HEADERS_TOO_LARGE',
        `the request headers are larger than ${limits.maxHeaderBytes} bytes`,
        {
          details: { limit: limits.maxHeaderBytes },
        },
      );
    } else {
      host.refusals.refuse(
        'bad-request',
        { remote: socket.remoteAddress, cause: code || err.name },
        'refused an HTTP request node:http cannot parse',
      );
      error = new AgentError('BAD_REQUEST', `the request cannot be parsed (${code || err.name})`);
    }
    if (live && !live.res.headersSent) {
      // Its own response, so that the exchange ends (slot, upstream request) as any refusal does.
      live.res.setHeader('connection', 'close');
      live.reject(error);
      live.res.once('finish', () => socket.destroySoon());
      setTimeout(() => socket.destroy(), 2000).unref();
      return;
    }
    if (live) {
      // Its response had begun: cutting it short is the only honest answer left.
      socket.destroy();
      return;
    }
    sendErrorOnSocket(socket, render(error, `${idPrefix}-e${(++counter).toString(36)}`));
    setTimeout(() => socket.destroy(), 2000).unref();
  });
}

/**
 * 408 for a body that broke the body rule (ADR 0023, `body-gate.ts`): counted and logged once,
 * answered through its own response (so its exchange ends, slot and upstream request with it) and
 * its connection closed; cut short if its response had begun.
 */
export function refuseSlowBody(
  live: InFlight,
  req: IncomingMessage,
  refusals: Refusals,
  pace: { idleMs: number; minBytesPerSecond: number },
  received: number,
): void {
  const socket = req.socket;
  if (live.isDone) {
    // Answered and over (refused early, say): the rest of its body is not waited for.
    socket.destroy();
    return;
  }
  refusals.refuse(
    'body-too-slow',
    {
      reqId: live.requestId,
      remote: socket.remoteAddress,
      received,
      idleMs: pace.idleMs,
      minBytesPerSecond: pace.minBytesPerSecond,
    },
    'closing an HTTP connection: request body stalled or too slow',
  );
  if (live.res.headersSent) {
    // Its response had begun (the upstream answered before the body ended): cut it short.
    socket.destroy();
    return;
  }
  live.res.setHeader('connection', 'close');
  live.reject(
    new AgentError(
      'REQUEST_TIMEOUT',
      `the request body stalled for ${pace.idleMs} ms or arrived slower than ${pace.minBytesPerSecond} bytes/s (${received} bytes received)`,
      { details: { timeoutMs: pace.idleMs, minBytesPerSecond: pace.minBytesPerSecond, receivedBytes: received } },
    ),
  );
  live.res.once('finish', () => socket.destroySoon());
  setTimeout(() => socket.destroy(), 2000).unref();
}
