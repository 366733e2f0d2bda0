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
import { type Duplex, Readable } from 'node:stream';
import type { Histogram } from 'prom-client';
import type { Pool } from 'undici';
import type { AgentContext, Front, ListenAddress } from '../core/context.js';
import { AgentError, cookieEndedError, sessionBusy, sessionEndedError, sessionNotFound } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { CreateResult, EndReason, Session, SessionTable } from '../core/sessions.js';
import { type Caller, isName, tenantOf, tenantRefusal } from '../core/tenancy.js';
import { LocalCoordinator } from '../fleet/local-coordinator.js';
import type { FenceGate, SessionLock } from '../fleet/lock.js';
import type { EndedReason } from '../fleet/registry.js';
import {
  type Coordinator,
  FLEET_HEADERS,
  type Route as FleetRoute,
  type HopRoute,
  type PlacementTicket,
} from '../fleet/types.js';
import { type ForwardMark, signForwardMark, verifyForwardMark } from '../routing/mark.js';
import { Admission, type Reservation } from './admission.js';
import { classify, containsInitialize, missingMcpSessionId, type Route } from './affinity.js';
import { readBodyUpTo } from './body.js';
import { Exchange, type ExchangeHost, type Outcome } from './exchange.js';
import { FORWARDED_BY_HEADER, NOT_OWNER_HEADER, PeerPools } from './fleet.js';
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

/** Requests that change a collaborative session, serialized by its lock; GET/HEAD/OPTIONS are reads. */
const WRITE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
/** What undici accepts in a request target (it refuses controls and anything above U+00FF). */
const INVALID_TARGET = /[^\u0021-\u00ff]/;
/** Minted cookie ids: 144 random bits, base64url (24 characters). */
const MINTED_ID_BYTES = 18;

type Admitted = { ok: true; setCookie?: string } | { ok: false; error: AgentError; clearCookie?: boolean };
/** What admission decided: go on or refuse (`Admitted`), or first place the new session the request starts. */
type Decision = Admitted | { ok: 'place'; create: (placement: PlacementTicket) => Admitted };

type SessionRoute = Extract<Route, { kind: 'session' }>;

/** Who starts a new session and, when the client chose it (header affinity), under which id. */
type NewCaller = Caller & { readonly sessionId?: string };

/**
 * What the fleet's routing step decided for a request or upgrade naming a session (`sessionStep`);
 * the request path and the upgrade path each act on it in their own way.
 */
type SessionStep =
  /** Admission on this instance, as without a fleet (held here, adopted here, or refused here). */
  | { readonly do: 'here' }
  /** A first-seen id: placed fleet-wide (a hop: in the slot reserved here), then created. */
  | { readonly do: 'create'; readonly hop: ForwardMark | undefined }
  /** Held by another live agent: forwarded (tunnelled) to it. */
  | { readonly do: 'peer'; readonly to: { readonly instanceId: string; readonly advertise: string } }
  /**
   * The policy's expired status; `reason`: how the session ended, if the fleet remembers (the
   * answer the agent that ended it gives); `notOwner`: a hop for a session not held here (the
   * sender routes again).
   */
  | { readonly do: 'expired'; readonly reason: 'unknown' | EndedReason; readonly notOwner: boolean }
  /** The fleet refused it (its store unreachable, the fleet full). */
  | { readonly do: 'refuse'; readonly error: AgentError }
  /** The client went away meanwhile. */
  | { readonly do: 'done' };

const HERE: SessionStep = { do: 'here' };
const CREATE: SessionStep = { do: 'create', hop: undefined };
const NOT_OWNER: SessionStep = { do: 'expired', reason: 'unknown', notOwner: true };
const OWNER_LOST: SessionStep = { do: 'expired', reason: 'owner-lost', notOwner: false };
const DONE: SessionStep = { do: 'done' };

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
  /**
   * Places every new session (and holds the quotas per principal and tenant), with and without
   * `--redis`. Requests for sessions held here never ask it anything.
   */
  private readonly coordinator: Coordinator;
  /** The same coordinator with `--redis` only: routing to and forwarding from other agents. */
  private readonly fleet: Coordinator | undefined;
  private readonly peers: PeerPools | undefined;
  /** With `policy.collaborative.enabled` only: the lock serializing each session's writes. */
  private readonly collaborative: { lock: SessionLock; fence: FenceGate } | undefined;

  constructor(
    private readonly context: AgentContext,
    options: HttpFrontOptions = {},
  ) {
    this.settings = normalizeHttpFrontOptions(context.policy, context.config, options);
    this.sessions = context.sessions;
    this.logger = context.logger;
    this.debug = context.logger.isLevelEnabled('debug');
    // A context built without a coordinator (tests) gets the in-process one the server would create.
    const coordinator = context.coordinator ?? new LocalCoordinator(context);
    this.coordinator = coordinator;
    const fleet = coordinator.mode === 'redis' ? coordinator : undefined;
    this.fleet = fleet;
    this.peers = fleet ? new PeerPools(this.settings.upstreamConnectTimeoutMs) : undefined;
    // The coordinator's lock: Redis with --redis, in-process (MemoryLock) without; both take their
    // TTL and wait from the policy.
    if (context.policy.collaborative?.enabled)
      this.collaborative = { lock: coordinator.lock, fence: coordinator.fence };
    this.admission = new Admission({
      sessions: context.sessions,
      load: context.load,
      draining: () => this.isDraining,
      idleTimeoutSeconds: context.policy.sessionIdleTimeoutSeconds,
      create: (id: string, reservation: Reservation) => this.openPlaced(id, reservation),
      cancelled: (reservation: Reservation) => {
        if (reservation.fleet) void coordinator.cancel(reservation.fleet);
      },
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
    await this.peers?.close();
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
      const pending = this.fleet ? this.routeInFleet(exchange, this.fleet) : this.route(exchange);
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
    const caller = this.callerOf(req);
    if (caller instanceof AgentError) return void exchange.reject(caller);
    exchange.path = target.path;
    const route = classify(
      { method: req.method ?? 'GET', path: target.path, query: target.query, headers: req.headers, upgrade: false },
      { affinity: this.settings.affinity, statelessUpstream: this.statelessUpstream },
    );
    switch (route.kind) {
      case 'mcp-sessionless-post':
        return this.routeSessionlessPost(exchange, caller, undefined);
      case 'sse-open':
        return this.newSession(exchange, caller, undefined, null, (placement) =>
          this.openSse(exchange, caller, placement),
        );
      default:
        return this.proceed(exchange, this.admit(exchange.ticket, route, caller, req, exchange.requestId), caller);
    }
  }

  /** Serves admission's decision; a request that starts a session first has it placed by the coordinator. */
  private proceed(
    exchange: Exchange,
    decision: Decision,
    caller: Caller,
    body: Readable | Buffer | null = bodyOf(exchange.req),
  ): Promise<void> | undefined {
    if (decision.ok !== 'place') return void this.serve(exchange, decision, body);
    return this.newSession(exchange, caller, undefined, body, (placement) =>
      this.serve(exchange, decision.create(placement), body),
    );
  }

  /** Forwards an admitted request to this instance's upstream (or refuses it). */
  private serve(exchange: Exchange, admitted: Admitted, body: Readable | Buffer | null = bodyOf(exchange.req)): void {
    const { req } = exchange;
    if (!admitted.ok) {
      exchange.reject(admitted.error, this.clearCookieFor(admitted, req));
      return;
    }
    exchange.setCookie = admitted.setCookie;
    const session = exchange.ticket.session;
    // An MCP DELETE ends the session once it went upstream (not when refused for the lock).
    const deletes =
      session !== undefined && this.settings.affinity.type === 'mcp-streamable-http' && req.method === 'DELETE';
    if (session && this.settings.affinity.type === 'mcp-streamable-http') {
      const version = req.headers['mcp-protocol-version'];
      if (session.meta.protocolVersion === undefined && typeof version === 'string' && version.length <= 32) {
        session.meta.protocolVersion = version;
      }
    }
    if (session && this.collaborative && WRITE_METHODS.has(req.method ?? 'GET')) {
      this.forwardUnderLock(exchange, session, body, this.collaborative, deletes).catch((error: unknown) =>
        this.internalError(exchange, error),
      );
      return;
    }
    if (deletes) exchange.kind = 'mcp-delete';
    exchange.forward(body);
  }

  /**
   * A write to a collaborative session (SPEC.md §6), here at its owner: waits in line for the
   * session's lock (at most `lockWaitSeconds`, then SESSION_BUSY), sends the fencing token
   * upstream, and holds the lock — renewed by the lease — until the exchange finishes.
   */
  private async forwardUnderLock(
    exchange: Exchange,
    session: Session,
    body: Readable | Buffer | null,
    collaborative: { lock: SessionLock; fence: FenceGate },
    deletes: boolean,
  ): Promise<void> {
    const id = session.id;
    let lease: Awaited<ReturnType<SessionLock['acquire']>>;
    try {
      lease = await collaborative.lock.acquire(id, { signal: exchange.clientSignal });
    } catch (error) {
      if (exchange.isDone) return;
      if (error instanceof AgentError) {
        return exchange.reject(
          error.code === 'SESSION_BUSY'
            ? sessionBusy(id, 'another write holds its lock', error.retryAfterSeconds)
            : error,
        );
      }
      throw error;
    }
    if (!exchange.holdLease(lease, FLEET_HEADERS.fencingToken, () => sessionBusy(id, 'the write lost its lock', 1))) {
      return;
    }
    // Where the write lands the token is checked too (a holder that stalled past its TTL).
    if (!collaborative.fence.admit(id, lease.token)) {
      return exchange.reject(sessionBusy(id, 'a newer writer holds its lock', 1));
    }
    // The session may have ended while this write waited.
    if (this.sessions.lookup(id).state !== 'active') {
      const cookie = this.settings.affinity.type === 'cookie';
      const found = this.admission.existing(
        id,
        session.principal,
        cookie ? 'reject-cookie' : 'reject',
        false,
        session.tenant,
      );
      const error = found.ok ? sessionNotFound() : found.error;
      return exchange.reject(
        error,
        cookie ? clearedCookie(this.settings.affinity.cookieName, { secure: isSecure(exchange.req) }) : undefined,
      );
    }
    if (deletes) exchange.kind = 'mcp-delete';
    exchange.forward(body);
  }

  /** A session-less MCP POST: an `initialize` starts a session, anything else needs one. */
  private async routeSessionlessPost(exchange: Exchange, caller: Caller, hop: ForwardMark | undefined): Promise<void> {
    const peeked = await readBodyUpTo(exchange.req, this.settings.initializePeekBytes);
    if (!peeked || exchange.isDone) return;
    if (!peeked.complete || !containsInitialize(peeked.bytes.toString('utf8'))) {
      const route = missingMcpSessionId() as Extract<Route, { kind: 'reject' }>;
      return exchange.reject(route.error);
    }
    // Placement and quotas before the server creates anything.
    return this.newSession(exchange, caller, hop, peeked.bytes, (placement) => {
      const error = this.reserve(exchange.ticket, caller, placement);
      if (error) return exchange.reject(error);
      exchange.kind = 'mcp-initialize';
      exchange.forward(peeked.bytes);
    });
  }

  /** A legacy SSE stream, placed: its session is created when the `endpoint` event names it. */
  private openSse(exchange: Exchange, caller: Caller, placement: PlacementTicket): void {
    const error = this.reserve(exchange.ticket, caller, placement);
    if (error) {
      exchange.reject(error);
      return;
    }
    exchange.kind = 'sse-open';
    exchange.forward(null);
  }

  /**
   * Holds a slot on this instance for a placed session whose id the upstream will name, plus a
   * concurrency slot.
   */
  private reserve(ticket: Ticket, caller: Caller, placement: PlacementTicket): AgentError | undefined {
    const reserved = this.admission.reserve(caller.principal, placement);
    if (!reserved.ok) void this.coordinator.cancel(placement);
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

  /**
   * Admission for routes that know their session id (or need none) before forwarding. A new
   * session (an unseen header id, a request without the cookie) is only created once placed.
   */
  private admit(ticket: Ticket, route: Route, caller: Caller, req: IncomingMessage, requestId: string): Decision {
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
        // A collaborative session may be used by any authenticated principal that knows its id;
        // only its creator may end it (MCP DELETE).
        const join =
          this.collaborative !== undefined &&
          !(req.method === 'DELETE' && this.settings.affinity.type === 'mcp-streamable-http');
        const found = this.admission.existing(route.id, caller.principal, route.whenMissing, join, caller.tenant);
        if (!found.ok) return { ok: false, error: found.error, clearCookie: route.whenMissing === 'reject-cookie' };
        if (found.session) {
          const error = ticket.takeSlot();
          if (error) return { ok: false, error };
          ticket.attach(found.session);
          return { ok: true };
        }
        return {
          ok: 'place',
          create: (placement) => this.createSession(ticket, route.id, caller, requestId, placement),
        };
      }
      case 'mint-cookie':
        return {
          ok: 'place',
          create: (placement) => this.mintCookieSession(ticket, caller, req, requestId, placement),
        };
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

  private mintCookieSession(
    ticket: Ticket,
    caller: Caller,
    req: IncomingMessage,
    requestId: string,
    placement: PlacementTicket,
  ): Admitted {
    {
      // In a fleet the id carries a signed owner hint, so agents can route it even without Redis.
      const id = this.fleet ? this.fleet.mintSessionId() : randomBytes(MINTED_ID_BYTES).toString('base64url');
      const created = this.createSession(ticket, id, caller, requestId, placement);
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
  }

  private createSession(
    ticket: Ticket,
    id: string,
    caller: Caller,
    requestId: string,
    placement: PlacementTicket,
  ): Admitted {
    const error = this.reserve(ticket, caller, placement);
    if (error) return { ok: false, error };
    const reservation = ticket.reservation!;
    ticket.reservation = undefined;
    const committed = this.admission.commit(reservation, id);
    if (!committed.ok) return { ok: false, error: committed.error };
    ticket.attach(committed.value);
    this.sessionCreated(committed.value, requestId);
    return { ok: true };
  }

  // The fleet (--redis)

  /**
   * Routes one request in a fleet. A request marked by another agent was placed and routed there:
   * it is served here or refused, never forwarded again. Others: a session held here is served as
   * without a fleet (no Redis command); one held elsewhere is proxied to its owner's agent; a new
   * session is placed fleet-wide, then created here or forwarded with its reservation.
   */
  private async routeInFleet(exchange: Exchange, fleet: Coordinator): Promise<void> {
    const { req } = exchange;
    const hop = this.hopOf(req, fleet, exchange.requestId);
    const target = checkTarget(req.url);
    if (target instanceof AgentError) return exchange.reject(target);
    const caller = this.callerOf(req);
    if (caller instanceof AgentError) return exchange.reject(caller);
    exchange.path = target.path;
    const route = classify(
      { method: req.method ?? 'GET', path: target.path, query: target.query, headers: req.headers, upgrade: false },
      { affinity: this.settings.affinity, statelessUpstream: this.statelessUpstream },
    );
    switch (route.kind) {
      case 'mcp-sessionless-post':
        return this.routeSessionlessPost(exchange, caller, hop);
      case 'sse-open':
        return this.newSession(exchange, caller, hop, null, (placement) => this.openSse(exchange, caller, placement));
      case 'mint-cookie': {
        const body = await this.retryableBody(exchange);
        if (body === undefined) return;
        return this.newSession(exchange, caller, hop, body, (ticket) =>
          this.serve(exchange, this.mintCookieSession(exchange.ticket, caller, req, exchange.requestId, ticket), body),
        );
      }
      case 'session': {
        const body = await this.retryableBody(exchange);
        if (body === undefined) return;
        const step = this.sessionStep(fleet, route, hop, exchange);
        return this.actOnRequest(exchange, fleet, route, caller, body, step instanceof Promise ? await step : step);
      }
      default:
        return this.proceed(exchange, this.admit(exchange.ticket, route, caller, req, exchange.requestId), caller);
    }
  }

  /**
   * The routing step of a request or upgrade naming a session, in a fleet: what to do with it,
   * for the request path and the upgrade path to act on each in its own way. Decided without
   * Redis for a session held here (the hot path: no `await` either) and for a first-seen id a hop
   * brings with its reservation; otherwise the fleet is asked (for any other hop only whether the
   * registry re-homed the session here: `routeHop`).
   */
  private sessionStep(
    fleet: Coordinator,
    route: SessionRoute,
    hop: ForwardMark | undefined,
    target: { readonly isDone: boolean },
  ): SessionStep | Promise<SessionStep> {
    if (this.sessions.lookup(route.id).state === 'active') return HERE;
    if (!hop) return this.fleetStep(fleet, route, target);
    // Placed and routed by the forwarding agent: served here or refused, never forwarded again.
    // A first-seen header id comes with the slot the forwarding agent reserved here.
    if (route.whenMissing === 'create' && hop.reservation !== undefined) return { do: 'create', hop };
    return this.hopStep(fleet, route, target);
  }

  /**
   * `sessionStep` for a hop naming a session not held here. The forwarding agent's lookup may
   * have re-homed it here (its owner died and the forwarder had no room): the registry names this
   * instance, which adopts it. Otherwise "not the owner", and the forwarder routes once more.
   */
  private async hopStep(
    fleet: Coordinator,
    route: SessionRoute,
    target: { readonly isDone: boolean },
  ): Promise<SessionStep> {
    let routed: HopRoute;
    try {
      routed = await fleet.routeHop(route.id);
    } catch (error) {
      if (error instanceof AgentError) return { do: 'refuse', error };
      throw error;
    }
    switch (routed.kind) {
      case 'local':
        return target.isDone ? DONE : HERE;
      case 'adopt': {
        // Adopted even if the client left meanwhile: an adoption left pending would be abandoned.
        const taken = await this.afterOwnerLost(fleet, route.id);
        if (taken instanceof AgentError) return { do: 'refuse', error: taken };
        if (target.isDone) return DONE;
        return taken ? HERE : OWNER_LOST;
      }
      case 'not-owner':
        return NOT_OWNER;
    }
  }

  /** `sessionStep` for a session not held here: where the fleet says it lives. */
  private async fleetStep(
    fleet: Coordinator,
    route: SessionRoute,
    target: { readonly isDone: boolean },
  ): Promise<SessionStep> {
    const routed = await routeOf(fleet, route.id);
    if (routed instanceof AgentError) return { do: 'refuse', error: routed };
    // An adoption route() started is finished whether or not the client is still there: left
    // pending, it would be abandoned (the session deleted from the registry) when it times out.
    if (target.isDone && routed.kind !== 'adopt') return DONE;
    switch (routed.kind) {
      case 'local':
        return HERE;
      case 'remote':
        return { do: 'peer', to: routed };
      case 'adopt': {
        const taken = await this.afterOwnerLost(fleet, route.id);
        if (taken instanceof AgentError) return { do: 'refuse', error: taken };
        if (target.isDone) return DONE;
        return taken ? HERE : OWNER_LOST;
      }
      case 'gone':
        // This instance remembers it ending: admission answers as a single agent does.
        if (this.sessions.lookup(route.id).state === 'ended') return HERE;
        // The fleet remembers how it ended (on another agent, or in the registry): the answer the
        // agent that ended it gives. A session lost with its owner is answered as an unknown id.
        if (routed.reason !== 'unknown' && routed.reason !== 'owner-lost') {
          return { do: 'expired', reason: routed.reason, notOwner: false };
        }
        // A client-chosen id starts a session (the placement script checks the memory of ended
        // ids again, atomically); any other id is unknown, which admission answers.
        return route.whenMissing === 'create' ? CREATE : HERE;
    }
  }

  /** What a request does on the routing step; `retried`: its forward to an owner failed once already. */
  private actOnRequest(
    exchange: Exchange,
    fleet: Coordinator,
    route: SessionRoute,
    caller: Caller,
    body: Readable | Buffer | null,
    step: SessionStep,
    retried = false,
  ): Promise<void> | undefined {
    const { req, requestId } = exchange;
    switch (step.do) {
      case 'here':
        return this.proceed(exchange, this.admit(exchange.ticket, route, caller, req, requestId), caller, body);
      case 'create':
        return this.newSession(exchange, { ...caller, sessionId: route.id }, step.hop, body, (ticket) =>
          this.serve(exchange, this.createSession(exchange.ticket, route.id, caller, requestId, ticket), body),
        );
      case 'peer':
        // The owner gone, or not holding it: route once more (with a body that can be sent again).
        return void this.forwardInFleet(exchange, fleet, step.to, undefined, body, {
          retry:
            retried || body instanceof Readable
              ? undefined
              : () => {
                  fleet.forget(route.id);
                  Promise.resolve(this.sessionStep(fleet, route, undefined, exchange))
                    .then((again) => this.actOnRequest(exchange, fleet, route, caller, body, again, true))
                    .catch((error: unknown) => this.internalError(exchange, error));
                  return true;
                },
        });
      case 'expired':
        return void (step.notOwner ? this.notOwner(exchange) : this.expired(exchange, step.reason));
      case 'refuse':
        return void exchange.reject(step.error);
      case 'done':
        return undefined;
    }
  }

  /**
   * The placement step every new session takes, requests and WebSocket upgrades alike, with and
   * without `--redis`: the coordinator enforces the quotas per principal and tenant and reserves
   * their places. A marked hop (placed by the forwarding agent) or a local placement calls
   * `local`, a refusal is answered on `target`; only a placement on another instance is returned,
   * for the caller to forward.
   */
  private async placeNew(
    target: { readonly isDone: boolean; reject(error: AgentError): void },
    caller: NewCaller,
    hop: ForwardMark | undefined,
    local: (ticket: PlacementTicket) => void,
  ): Promise<Extract<Awaited<ReturnType<Coordinator['place']>>, { kind: 'remote' }> | undefined> {
    if (hop) {
      local({ reservationId: hop.reservation, principal: caller.principal, tenant: caller.tenant });
      return undefined;
    }
    if (this.isDraining) {
      target.reject(
        new AgentError('DRAINING', 'this instance is shutting down and takes no new sessions', {
          retryAfterSeconds: 1,
        }),
      );
      return undefined;
    }
    const coordinator = this.coordinator;
    let placement: Awaited<ReturnType<Coordinator['place']>>;
    try {
      placement = await coordinator.place(caller);
    } catch (error) {
      if (error instanceof AgentError) {
        target.reject(error);
        return undefined;
      }
      throw error;
    }
    if (target.isDone) {
      void coordinator.cancel(placement);
      return undefined;
    }
    if (placement.kind === 'local') {
      local(placement);
      return undefined;
    }
    return placement;
  }

  /** Places a new session: `local(ticket)` creates it here, or (in a fleet) the request goes to its instance. */
  private async newSession(
    exchange: Exchange,
    caller: NewCaller,
    hop: ForwardMark | undefined,
    body: Readable | Buffer | null,
    local: (ticket: PlacementTicket) => void,
  ): Promise<void> {
    const placement = await this.placeNew(exchange, caller, hop, local);
    if (!placement) return;
    const coordinator = this.coordinator;
    this.forwardInFleet(exchange, coordinator, placement, placement.reservationId, body, {
      failed: () => void coordinator.cancel(placement),
    });
  }

  private forwardInFleet(
    exchange: Exchange,
    fleet: Coordinator,
    to: { instanceId: string; advertise: string },
    reservation: string | undefined,
    body: Readable | Buffer | null,
    options: { retry?: (() => boolean) | undefined; failed?: () => void },
  ): void {
    const hints = fleet.hints;
    if (!hints) {
      options.failed?.();
      exchange.reject(
        new AgentError('STORE_UNAVAILABLE', 'this agent does not know the fleet key yet', { retryAfterSeconds: 1 }),
      );
      return;
    }
    const { pool, host } = this.peers!.get(to.advertise);
    const mark = signForwardMark(hints, this.context.config.instanceId, to.instanceId, reservation);
    exchange.forwardToPeer(body, {
      pool,
      host,
      headers: [FORWARDED_BY_HEADER, mark],
      ...(options.retry ? { retry: options.retry } : {}),
      ...(options.failed ? { failed: options.failed } : {}),
    });
  }

  /** A valid forwarding mark on the request, if any (an invalid one is ignored: never forwarded upstream). */
  private hopOf(req: IncomingMessage, fleet: Coordinator, requestId: string): ForwardMark | undefined {
    const value = req.headers[FORWARDED_BY_HEADER];
    if (value === undefined) return undefined;
    const checked = verifyForwardMark(fleet.hints, this.context.config.instanceId, value);
    if (checked.ok) return checked.mark;
    this.logger.warn({ reqId: requestId, reason: checked.reason }, 'ignored an invalid forwarding mark');
    return undefined;
  }

  /**
   * The body of a request that may be forwarded and retried: read whole when small (the MCP
   * messages are), else left streaming (no retry then). Undefined: the client went away.
   */
  private async retryableBody(exchange: Exchange): Promise<Readable | Buffer | null | undefined> {
    const body = bodyOf(exchange.req);
    if (body === null) return null;
    const peeked = await readBodyUpTo(exchange.req, this.settings.initializePeekBytes);
    if (!peeked || exchange.isDone) return undefined;
    if (peeked.complete) return peeked.bytes;
    const rest = exchange.req;
    return Readable.from(
      (async function* () {
        yield peeked.bytes;
        rest.resume();
        for await (const chunk of rest) yield chunk as Buffer;
      })(),
    );
  }

  /** A marked request for a session this instance does not hold: the forwarding agent routes again. */
  private notOwner(exchange: Exchange): void {
    exchange.res.setHeader(NOT_OWNER_HEADER, this.context.config.instanceId);
    this.expired(exchange, 'unknown');
  }

  /**
   * The policy's expired status (cookies: 401 and the cookie cleared). For a session that ended
   * (`reason`, from the fleet's memory) the body the agent that ended it gives from its own table;
   * otherwise the body of a session unknown to a single instance.
   */
  private expired(exchange: Exchange, reason: 'unknown' | EndedReason): void {
    exchange.reject(...this.expiredFor(exchange.req, reason));
  }

  private expiredFor(req: IncomingMessage, reason: 'unknown' | EndedReason): [AgentError, string | undefined] {
    if (this.settings.affinity.type !== 'cookie') {
      return [reason === 'unknown' ? sessionNotFound() : sessionEndedError(reason), undefined];
    }
    const ended = reason === 'owner-lost' || reason === 'unknown' ? undefined : reason;
    return [
      ended
        ? cookieEndedError(ended)
        : new AgentError('INVALID_COOKIE', 'the cookie names no live session of the fleet', { details: { reason } }),
      clearedCookie(this.settings.affinity.cookieName, { secure: isSecure(req) }),
    ];
  }

  /**
   * Creates a committed reservation's session through the coordinator, which registers it (in a
   * fleet, fleet-wide) and passes its placement's quota places to it. `open()` creates the table
   * entry before its first `await` (its contract), so the session exists when this returns; a
   * registry refusal later ends it (an ownership conflict).
   */
  private openPlaced(id: string, reservation: Reservation): CreateResult {
    const coordinator = this.coordinator;
    const ticket = reservation.fleet ?? { principal: reservation.principal };
    if (this.sessions.lookup(id).state === 'active') {
      void coordinator.cancel(ticket);
      return { ok: false, reason: 'exists' };
    }
    const opening = coordinator.open(
      ticket,
      id,
      reservation.principal !== undefined ? { principal: reservation.principal } : {},
    );
    opening.catch((error: unknown) =>
      this.logger.warn(
        { sessionId: id, err: error instanceof Error ? error.message : String(error) },
        'the coordinator refused a new session',
      ),
    );
    const session = this.sessions.get(id);
    if (session) return { ok: true, session };
    return { ok: false, reason: this.sessions.isDraining ? 'draining' : 'full' };
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

  /**
   * Who sent the request: the principal from `--principal-header`, its tenant from
   * `--tenant-header` or else `--tenant`. Refused: a missing or malformed principal header
   * (UNAUTHENTICATED), a malformed tenant header (UNAUTHENTICATED), another tenant under tenant
   * isolation (TENANT_FORBIDDEN).
   */
  private callerOf(req: IncomingMessage): Caller | AgentError {
    const { principalHeader, tenantHeader } = this.settings;
    let principal: string | undefined;
    if (principalHeader) {
      const value = req.headers[principalHeader];
      if (!isName(value)) {
        return new AgentError(
          'UNAUTHENTICATED',
          value === undefined
            ? `the ${principalHeader} header naming the principal is missing`
            : `the ${principalHeader} header must name one principal (1-256 characters, no spaces)`,
          { details: { header: principalHeader } },
        );
      }
      principal = value;
    }
    let own: string | undefined;
    if (tenantHeader) {
      const value = req.headers[tenantHeader];
      if (value !== undefined && !isName(value)) {
        return new AgentError(
          'UNAUTHENTICATED',
          `the ${tenantHeader} header must name one tenant (1-256 characters, no spaces)`,
          { details: { header: tenantHeader } },
        );
      }
      own = value;
    }
    const caller: Caller = { principal, tenant: tenantOf(own, this.context.config) };
    return tenantRefusal(this.context.policy, this.context.config, caller) ?? caller;
  }

  // WebSocket upgrades

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    this.active++;
    const tunnel = new WebSocketTunnel(this, req, socket, this.requestIdOf(req));
    this.tunnels.add(tunnel);
    try {
      if (this.fleet) {
        this.upgradeInFleet(tunnel, this.fleet, head).catch((error: unknown) => this.internalError(tunnel, error));
        return;
      }
      const target = checkTarget(req.url);
      if (target instanceof AgentError) return tunnel.reject(target);
      const caller = this.callerOf(req);
      if (caller instanceof AgentError) return tunnel.reject(caller);
      const route = this.classifyUpgrade(req, target);
      const pending = this.proceedTunnel(
        tunnel,
        this.admit(tunnel.ticket, route, caller, req, tunnel.requestId),
        caller,
        head,
      );
      pending?.catch((error: unknown) => this.internalError(tunnel, error));
    } catch (error) {
      this.internalError(tunnel, error);
    }
  };

  private classifyUpgrade(req: IncomingMessage, target: { path: string; query: string }): Route {
    return classify(
      { method: req.method ?? 'GET', path: target.path, query: target.query, headers: req.headers, upgrade: true },
      { affinity: this.settings.affinity, statelessUpstream: this.statelessUpstream },
    );
  }

  /** `proceed` for an upgrade: serves admission's decision, placing the session it starts first. */
  private proceedTunnel(
    tunnel: WebSocketTunnel,
    decision: Decision,
    caller: Caller,
    head: Buffer,
  ): Promise<void> | undefined {
    if (decision.ok !== 'place') return void this.openTunnel(tunnel, decision, head);
    return this.newTunnel(tunnel, caller, undefined, head, (placement) =>
      this.openTunnel(tunnel, decision.create(placement), head),
    );
  }

  /** Joins an admitted upgrade to this instance's upstream (or refuses it). */
  private openTunnel(tunnel: WebSocketTunnel, admitted: Admitted, head: Buffer): void {
    if (!admitted.ok) {
      tunnel.reject(admitted.error, this.clearCookieFor(admitted, tunnel.req));
      return;
    }
    tunnel.setCookie = admitted.setCookie;
    tunnel.open(head);
  }

  /**
   * An upgrade in a fleet, routed as `routeInFleet` routes a request: a marked one is served here
   * or refused; a session held here is served here; one held elsewhere is tunnelled to its owner
   * agent; a new session (header or cookie affinity) is placed fleet-wide, then created here or
   * tunnelled with its reservation.
   */
  private async upgradeInFleet(tunnel: WebSocketTunnel, fleet: Coordinator, head: Buffer): Promise<void> {
    const { req } = tunnel;
    const hop = this.hopOf(req, fleet, tunnel.requestId);
    const target = checkTarget(req.url);
    if (target instanceof AgentError) return tunnel.reject(target);
    const caller = this.callerOf(req);
    if (caller instanceof AgentError) return tunnel.reject(caller);
    const route = this.classifyUpgrade(req, target);
    switch (route.kind) {
      case 'mint-cookie':
        return this.newTunnel(tunnel, caller, hop, head, (ticket) =>
          this.openTunnel(tunnel, this.mintCookieSession(tunnel.ticket, caller, req, tunnel.requestId, ticket), head),
        );
      case 'session': {
        const step = this.sessionStep(fleet, route, hop, tunnel);
        return this.actOnUpgrade(tunnel, fleet, route, caller, head, step instanceof Promise ? await step : step);
      }
      default:
        return this.proceedTunnel(
          tunnel,
          this.admit(tunnel.ticket, route, caller, req, tunnel.requestId),
          caller,
          head,
        );
    }
  }

  /** `actOnRequest` for an upgrade: what it does on the routing step. */
  private actOnUpgrade(
    tunnel: WebSocketTunnel,
    fleet: Coordinator,
    route: SessionRoute,
    caller: Caller,
    head: Buffer,
    step: SessionStep,
    retried = false,
  ): Promise<void> | undefined {
    const { req, requestId } = tunnel;
    switch (step.do) {
      case 'here':
        return this.proceedTunnel(tunnel, this.admit(tunnel.ticket, route, caller, req, requestId), caller, head);
      case 'create':
        return this.newTunnel(tunnel, { ...caller, sessionId: route.id }, step.hop, head, (ticket) =>
          this.openTunnel(tunnel, this.createSession(tunnel.ticket, route.id, caller, requestId, ticket), head),
        );
      case 'peer':
        // As a request: the owner gone, or not holding it, the upgrade is routed once more.
        return void this.tunnelToPeer(tunnel, fleet, step.to, undefined, head, {
          failed: () => fleet.forget(route.id),
          retry: retried
            ? undefined
            : () => {
                fleet.forget(route.id);
                Promise.resolve(this.sessionStep(fleet, route, undefined, tunnel))
                  .then((again) => this.actOnUpgrade(tunnel, fleet, route, caller, head, again, true))
                  .catch((error: unknown) => this.internalError(tunnel, error));
              },
        });
      case 'expired':
        return void tunnel.reject(
          ...this.expiredFor(req, step.reason),
          step.notOwner ? { [NOT_OWNER_HEADER]: this.context.config.instanceId } : undefined,
        );
      case 'refuse':
        return void tunnel.reject(step.error);
      case 'done':
        return undefined;
    }
  }

  /**
   * A session whose owner is gone. HTTP sessions live in the upstream's memory: only with shared
   * state can this instance's upstream go on with it (true: adopted here); otherwise it is given up
   * (false) and the client starts a new one.
   */
  private async afterOwnerLost(fleet: Coordinator, id: string): Promise<boolean | AgentError> {
    if (!this.context.policy.sharedSessionState) {
      await fleet.abandon(id);
      return false;
    }
    try {
      await fleet.adopt(id);
      return true;
    } catch (error) {
      if (error instanceof AgentError) return error;
      throw error;
    }
  }

  /** Places a new session for an upgrade: `local(ticket)` creates it here, or (in a fleet) the upgrade goes to its instance. */
  private async newTunnel(
    tunnel: WebSocketTunnel,
    caller: NewCaller,
    hop: ForwardMark | undefined,
    head: Buffer,
    local: (ticket: PlacementTicket) => void,
  ): Promise<void> {
    const placement = await this.placeNew(tunnel, caller, hop, local);
    if (!placement) return;
    const coordinator = this.coordinator;
    this.tunnelToPeer(tunnel, coordinator, placement, placement.reservationId, head, {
      failed: () => void coordinator.cancel(placement),
    });
  }

  /**
   * Sends the upgrade to the owner agent with the signed mark. `retry`: called instead of
   * answering when the owner could not be reached or does not hold the session; `failed`: the
   * upgrade could not go there, for good.
   */
  private tunnelToPeer(
    tunnel: WebSocketTunnel,
    fleet: Coordinator,
    to: { instanceId: string; advertise: string },
    reservation: string | undefined,
    head: Buffer,
    options: { failed: () => void; retry?: (() => void) | undefined },
  ): void {
    const { failed, retry } = options;
    const hints = fleet.hints;
    if (!hints) {
      failed();
      tunnel.reject(
        new AgentError('STORE_UNAVAILABLE', 'this agent does not know the fleet key yet', { retryAfterSeconds: 1 }),
      );
      return;
    }
    const url = new URL(to.advertise);
    const secure = url.protocol === 'https:';
    const mark = signForwardMark(hints, this.context.config.instanceId, to.instanceId, reservation);
    tunnel.open(head, {
      secure,
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port ? Number(url.port) : secure ? 443 : 80,
      host: url.host,
      headers: [FORWARDED_BY_HEADER, mark],
      unreachable: (error) => {
        failed();
        return new AgentError(
          'UPSTREAM_UNAVAILABLE',
          'the agent of the instance that holds this session is not answering',
          {
            retryAfterSeconds: 1,
            details: { cause: String((error as { code?: unknown }).code ?? error.name) },
          },
        );
      },
      notOwner: failed,
      ...(retry ? { retry } : {}),
    });
  }

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

/** Where the fleet says a session lives; a refusal the client should see comes back as the error. */
async function routeOf(fleet: Coordinator, id: string): Promise<FleetRoute | AgentError> {
  try {
    return await fleet.route(id);
  } catch (error) {
    if (error instanceof AgentError) return error;
    throw error;
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
