/**
 * The agent's HTTP front (SPEC.md §2–4): every client request on `--listen` is tied to its
 * session, admitted against the quotas, and proxied to `--upstream` with its body and response
 * streamed both ways.
 *
 * The client port is a bare `node:http` server feeding undici's pool, not a Fastify app (Fastify
 * keeps the admin port). A proxy has one route — "everything" — so Fastify's router, hooks and
 * reply object bought nothing here but cost a third of the throughput when measured
 * (README, "HTTP front"). The capabilities still live one per file: affinity (`affinity.ts`),
 * admission (`admission.ts`), the proxied exchange (`exchange.ts`), WebSockets (`websocket.ts`),
 * the SSE endpoint scanner, header rewriting, the error rendering.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import type { Histogram } from 'prom-client';
import type { Pool } from 'undici';
import type { AgentContext, Front, ListenAddress } from '../core/context.js';
import { AgentError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { EndReason, Session, SessionTable } from '../core/sessions.js';
import { Admission } from './admission.js';
import { classify, containsInitialize, missingMcpSessionId, type Route } from './affinity.js';
import { readBodyUpTo } from './body.js';
import { Exchange, type ExchangeHost, type Outcome } from './exchange.js';
import { clearedCookie, isSecure, sessionCookie } from './headers.js';
import { type HttpFrontOptions, type HttpFrontSettings, normalizeHttpFrontOptions } from './options.js';
import { OpenStreams } from './streams.js';
import type { Ticket } from './ticket.js';
import { createUpstreamPool, deleteUpstreamSession } from './upstream.js';
import { type TunnelHost, WebSocketTunnel } from './websocket.js';

/** Session ends after which the MCP server still holds the session's state: the agent deletes it there. */
const DELETE_UPSTREAM_AFTER: ReadonlySet<EndReason> = new Set([
  'expired-lifetime',
  'expired-idle',
  'evicted',
  'terminated',
]);

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
const PRINCIPAL = /^[^\s]{1,256}$/;
/** What undici accepts in a request target (it refuses controls and anything above U+00FF). */
const INVALID_TARGET = /[^\u0021-\u00ff]/;
/** Minted cookie ids: 144 random bits, base64url (24 characters). */
const MINTED_ID_BYTES = 18;

type Admitted = { ok: true; setCookie?: string } | { ok: false; error: AgentError; clearCookie?: boolean };

/** Counts for tests and diagnostics: everything here returns to 0 when the agent is idle. */
export interface HttpFrontStats {
  activeRequests: number;
  openStreams: number;
  sessionsWithStreams: number;
  pendingReservations: number;
  tunnels: number;
  pendingUpstreamDeletes: number;
}

export class HttpFront implements Front, ExchangeHost, TunnelHost {
  readonly kind = 'http' as const;
  readonly settings: HttpFrontSettings;
  readonly pool: Pool;
  readonly sessions: SessionTable;
  readonly admission: Admission;
  readonly streams = new OpenStreams();
  readonly logger: Logger;
  private readonly server: Server;
  private readonly tunnels = new Set<WebSocketTunnel>();
  private readonly pendingDeletes = new Map<string, Promise<void>>();
  private readonly durations: Record<Outcome, Histogram.Internal<'front' | 'outcome'>>;
  private readonly requestIdPrefix = randomBytes(4).toString('hex');
  private requestCounter = 0;
  private active = 0;
  private drainWaiters: Array<() => void> = [];
  private statelessUpstream = false;
  private draining = false;
  private closed = false;
  private readonly debug: boolean;

  constructor(
    private readonly context: AgentContext,
    options: HttpFrontOptions = {},
  ) {
    this.settings = normalizeHttpFrontOptions(context.policy, context.config, options);
    this.sessions = context.sessions;
    this.logger = context.logger;
    this.debug = context.logger.isLevelEnabled('debug');
    this.admission = new Admission({
      sessions: context.sessions,
      load: context.load,
      draining: () => this.isDraining,
      sessionsPerPrincipal: this.settings.sessionsPerPrincipal,
      idleTimeoutSeconds: context.policy.sessionIdleTimeoutSeconds,
    });
    this.pool = createUpstreamPool(this.settings);
    const histogram = context.metrics.requestDuration;
    this.durations = {
      ok: histogram.labels('http', 'ok'),
      rejected: histogram.labels('http', 'rejected'),
      'upstream-error': histogram.labels('http', 'upstream-error'),
      aborted: histogram.labels('http', 'aborted'),
    };
    this.server = createServer({ noDelay: true }, this.onRequest);
    this.server.keepAliveTimeout = this.settings.clientKeepAliveTimeoutMs;
    this.server.on('upgrade', this.onUpgrade);
    context.onSessionEnd((session, reason) => this.onSessionEnd(session, reason));
    if (context.principals && !this.settings.principalHeader) {
      this.logger.warn(
        '--principals is read by the Copilot front; the HTTP front takes the principal from --principal-header',
      );
    }
  }

  get isDraining(): boolean {
    return this.draining || this.context.draining;
  }

  stats(): HttpFrontStats {
    return {
      activeRequests: this.active,
      openStreams: this.streams.size,
      sessionsWithStreams: this.streams.sessionCount,
      pendingReservations: this.admission.pendingCount,
      tunnels: this.tunnels.size,
      pendingUpstreamDeletes: this.pendingDeletes.size,
    };
  }

  async listen(): Promise<ListenAddress> {
    const { host, port } = this.context.config.listen;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const address = this.server.address() as AddressInfo;
    return { host: address.address, port: address.port };
  }

  async terminate(sessionId: string): Promise<boolean> {
    if (!this.sessions.end(sessionId, 'terminated')) return false;
    await this.pendingDeletes.get(sessionId);
    return true;
  }

  drain(): Promise<void> {
    this.draining = true;
    // Idle keep-alive connections go now, so their clients reconnect to an instance that stays.
    this.server.closeIdleConnections();
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.draining = true;
    this.streams.closeAll();
    for (const tunnel of [...this.tunnels]) tunnel.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.pool.destroy();
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }

  // ExchangeHost / TunnelHost

  requestSettled(): void {
    this.active--;
    if (this.active === 0 && this.drainWaiters.length > 0) {
      for (const resolve of this.drainWaiters.splice(0)) resolve();
    }
  }

  sessionCreated(session: Session, requestId: string): void {
    this.context.metrics.sessionsCreated.inc({ front: 'http' });
    this.logger.info({ reqId: requestId, sessionId: session.id, principal: session.principal }, 'session created');
  }

  upstreamIsStateless(): void {
    if (this.statelessUpstream) return;
    this.statelessUpstream = true;
    this.logger.info(
      'the upstream answered initialize without Mcp-Session-Id: it keeps no sessions, requests pass without affinity (quotas still apply)',
    );
  }

  rejected(error: AgentError, requestId: string, sessionId: string | undefined): void {
    this.context.metrics.rejections.inc({ code: error.code });
    if (this.debug) this.logger.debug({ reqId: requestId, sessionId, code: error.code }, error.message);
  }

  orphaned(id: string, path: string): void {
    void deleteUpstreamSession(this.pool, this.settings, { id, path, protocolVersion: undefined }).catch(() => {});
  }

  finished(exchange: Exchange, outcome: Outcome, seconds: number): void {
    this.durations[outcome].observe(seconds);
    if (this.debug) {
      const url = exchange.req.url ?? '';
      this.logger.debug(
        {
          reqId: exchange.requestId,
          sessionId: exchange.sessionId,
          method: exchange.req.method,
          path: url.split('?')[0],
          status: exchange.status,
          outcome,
          ms: Math.round(seconds * 1e4) / 10,
        },
        'request done',
      );
    }
  }

  tunnelFinished(tunnel: WebSocketTunnel, outcome: Outcome, seconds: number): void {
    this.tunnels.delete(tunnel);
    this.durations[outcome].observe(seconds);
    if (this.debug) {
      this.logger.debug(
        { reqId: tunnel.requestId, sessionId: tunnel.ticket.session?.id, outcome, ms: Math.round(seconds * 1000) },
        'websocket closed',
      );
    }
  }

  // The request path

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse) => {
    this.active++;
    const exchange = new Exchange(this, req, res, this.requestIdOf(req));
    try {
      const pending = this.route(exchange);
      if (pending) pending.catch((error: unknown) => this.internalError(exchange, error));
    } catch (error) {
      this.internalError(exchange, error);
    }
  };

  private internalError(exchange: Exchange | WebSocketTunnel, error: unknown): void {
    this.logger.error(
      { reqId: exchange.requestId, sessionId: exchange.ticket.session?.id, err: error },
      'the agent failed on a request',
    );
    exchange.reject(new AgentError('INTERNAL_ERROR', 'the agent failed on this request'));
  }

  /** Routes one request; returns a promise only when it has to read the body first. */
  private route(exchange: Exchange): Promise<void> | undefined {
    const { req } = exchange;
    const target = checkTarget(req.url);
    if (target instanceof AgentError) return void exchange.reject(target);
    const principal = this.principalOf(req);
    if (principal instanceof AgentError) return void exchange.reject(principal);
    exchange.path = target.path;
    const route = classify(
      { method: req.method ?? 'GET', path: target.path, query: target.query, headers: req.headers, upgrade: false },
      { affinity: this.settings.affinity, statelessUpstream: this.statelessUpstream },
    );
    switch (route.kind) {
      case 'mcp-sessionless-post':
        return this.routeSessionlessPost(exchange, principal);
      case 'sse-open': {
        const error = this.reserve(exchange.ticket, principal);
        if (error) return void exchange.reject(error);
        exchange.kind = 'sse-open';
        return void exchange.forward(null);
      }
      default: {
        const admitted = this.admit(exchange.ticket, route, principal, req, exchange.requestId);
        if (!admitted.ok) return void exchange.reject(admitted.error, this.clearCookieFor(admitted, req));
        exchange.setCookie = admitted.setCookie;
        const session = exchange.ticket.session;
        if (session && this.settings.affinity.type === 'mcp-streamable-http') {
          if (req.method === 'DELETE') exchange.kind = 'mcp-delete';
          const version = req.headers['mcp-protocol-version'];
          if (session.meta.protocolVersion === undefined && typeof version === 'string' && version.length <= 32) {
            session.meta.protocolVersion = version;
          }
        }
        return void exchange.forward(bodyOf(req));
      }
    }
  }

  /** A session-less MCP POST: an `initialize` starts a session, anything else needs one. */
  private async routeSessionlessPost(exchange: Exchange, principal: string | undefined): Promise<void> {
    const peeked = await readBodyUpTo(exchange.req, this.settings.initializePeekBytes);
    if (!peeked || exchange.isDone) return;
    if (!peeked.complete || !containsInitialize(peeked.bytes.toString('utf8'))) {
      const route = missingMcpSessionId() as Extract<Route, { kind: 'reject' }>;
      return exchange.reject(route.error);
    }
    // The quota is checked before the server creates anything.
    const error = this.reserve(exchange.ticket, principal);
    if (error) return exchange.reject(error);
    exchange.kind = 'mcp-initialize';
    exchange.forward(peeked.bytes);
  }

  /** Holds a slot for a session whose id the upstream will name, plus a concurrency slot. */
  private reserve(ticket: Ticket, principal: string | undefined): AgentError | undefined {
    const reserved = this.admission.reserve(principal);
    if (!reserved.ok) return reserved.error;
    const error = ticket.takeSlot();
    if (error) {
      // Give the session slot back now, not when the refused response closes.
      this.admission.cancel(reserved.value);
      return error;
    }
    ticket.reservation = reserved.value;
    return undefined;
  }

  /** Admission for routes that know their session id (or need none) before forwarding. */
  private admit(
    ticket: Ticket,
    route: Route,
    principal: string | undefined,
    req: IncomingMessage,
    requestId: string,
  ): Admitted {
    switch (route.kind) {
      case 'reject':
        return route.clearCookie
          ? { ok: false, error: route.error, clearCookie: true }
          : { ok: false, error: route.error };
      case 'stateless': {
        const error = ticket.takeSlot();
        return error ? { ok: false, error } : { ok: true };
      }
      case 'session': {
        const found = this.admission.existing(route.id, principal, route.whenMissing);
        if (!found.ok) return { ok: false, error: found.error, clearCookie: route.whenMissing === 'reject-cookie' };
        if (found.session) {
          const error = ticket.takeSlot();
          if (error) return { ok: false, error };
          ticket.attach(found.session);
          return { ok: true };
        }
        return this.createSession(ticket, route.id, principal, requestId);
      }
      case 'mint-cookie': {
        const id = randomBytes(MINTED_ID_BYTES).toString('base64url');
        const created = this.createSession(ticket, id, principal, requestId);
        if (!created.ok) return created;
        const { cookieName } = this.settings.affinity as { cookieName: string };
        return {
          ok: true,
          setCookie: sessionCookie(cookieName, id, {
            secure: isSecure(req),
            maxAgeSeconds: this.settings.cookieMaxAgeSeconds,
          }),
        };
      }
      default:
        return {
          ok: false,
          error: new AgentError(
            'WRONG_TRANSPORT',
            `this request cannot be an ${req.headers.upgrade ?? 'Upgrade'} request`,
          ),
        };
    }
  }

  private createSession(ticket: Ticket, id: string, principal: string | undefined, requestId: string): Admitted {
    const error = this.reserve(ticket, principal);
    if (error) return { ok: false, error };
    const reservation = ticket.reservation!;
    ticket.reservation = undefined;
    const committed = this.admission.commit(reservation, id);
    if (!committed.ok) return { ok: false, error: committed.error };
    ticket.attach(committed.value);
    this.sessionCreated(committed.value, requestId);
    return { ok: true };
  }

  private clearCookieFor(admitted: Admitted, req: IncomingMessage): string | undefined {
    if (admitted.ok || !admitted.clearCookie || this.settings.affinity.type !== 'cookie') return undefined;
    return clearedCookie(this.settings.affinity.cookieName, { secure: isSecure(req) });
  }

  private requestIdOf(req: IncomingMessage): string {
    const given = req.headers['x-request-id'];
    if (typeof given === 'string' && REQUEST_ID.test(given)) return given;
    return `${this.requestIdPrefix}-${(++this.requestCounter).toString(36)}`;
  }

  private principalOf(req: IncomingMessage): string | undefined | AgentError {
    const name = this.settings.principalHeader;
    if (!name) return undefined;
    const value = req.headers[name];
    if (typeof value === 'string' && PRINCIPAL.test(value)) return value;
    return new AgentError(
      'UNAUTHENTICATED',
      value === undefined
        ? `the ${name} header naming the principal is missing`
        : `the ${name} header must name one principal (1-256 characters, no spaces)`,
      { details: { header: name } },
    );
  }

  // WebSocket upgrades

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    this.active++;
    const tunnel = new WebSocketTunnel(this, req, socket, this.requestIdOf(req));
    this.tunnels.add(tunnel);
    try {
      const target = checkTarget(req.url);
      if (target instanceof AgentError) return tunnel.reject(target);
      const principal = this.principalOf(req);
      if (principal instanceof AgentError) return tunnel.reject(principal);
      const route = classify(
        { method: req.method ?? 'GET', path: target.path, query: target.query, headers: req.headers, upgrade: true },
        { affinity: this.settings.affinity, statelessUpstream: this.statelessUpstream },
      );
      const admitted = this.admit(tunnel.ticket, route, principal, req, tunnel.requestId);
      if (!admitted.ok) return tunnel.reject(admitted.error, this.clearCookieFor(admitted, req));
      tunnel.setCookie = admitted.setCookie;
      tunnel.open(head);
    } catch (error) {
      this.internalError(tunnel, error);
    }
  };

  // Sessions ending for any reason

  private onSessionEnd(session: Session, reason: EndReason): void {
    this.streams.closeSession(session.id);
    if (this.settings.affinity.type !== 'mcp-streamable-http' || !DELETE_UPSTREAM_AFTER.has(reason) || this.closed) {
      return;
    }
    const path = typeof session.meta.mcpPath === 'string' ? session.meta.mcpPath : '/';
    const protocolVersion = typeof session.meta.protocolVersion === 'string' ? session.meta.protocolVersion : undefined;
    const deletion = deleteUpstreamSession(this.pool, this.settings, { id: session.id, path, protocolVersion }).then(
      (status) => this.logger.debug({ sessionId: session.id, status, reason }, 'session deleted upstream'),
      (error: unknown) =>
        this.logger.warn(
          { sessionId: session.id, reason, err: error instanceof Error ? error.message : String(error) },
          'could not delete the session upstream',
        ),
    );
    const tracked = deletion.finally(() => this.pendingDeletes.delete(session.id));
    this.pendingDeletes.set(session.id, tracked);
  }
}

function checkTarget(url: string | undefined): { path: string; query: string } | AgentError {
  if (url === undefined || url.charCodeAt(0) !== 0x2f || INVALID_TARGET.test(url)) {
    return new AgentError('BAD_REQUEST', 'the request target must be an absolute path such as /mcp');
  }
  const q = url.indexOf('?');
  return q < 0 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q + 1) };
}

function bodyOf(req: IncomingMessage): Readable | null {
  const length = req.headers['content-length'];
  if (length !== undefined) return length === '0' ? null : req;
  return req.headers['transfer-encoding'] !== undefined ? req : null;
}

export async function createHttpFront(context: AgentContext, options: HttpFrontOptions = {}): Promise<Front> {
  return new HttpFront(context, options);
}
