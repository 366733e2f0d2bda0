/**
 * What every request and upgrade of the HTTP front goes through on this instance, whatever the
 * routing decided: who is calling, which session the request names, its mark, and — once the
 * routing core said "serve here" or "create here" — admission against this instance's own table
 * (owner, tenant, session slot, concurrency slot) and the creation of the new session under its
 * placement ticket. It also renders the routing core's `expired` decision in HTTP terms (cookies
 * are an HTTP matter).
 *
 * No fleet rule lives here: where a session goes is `agent/routing/`'s decision.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { toolKey } from '../../policy/index.js';
import type { AgentContext } from '../core/context.js';
import { AgentError, cookieEndedError } from '../core/errors.js';
import {
  bearerToken,
  invalidToken,
  type JwtVerifier,
  protectedResourceMetadata,
  resourceMetadataPaths,
} from '../core/jwt.js';
import type { Logger } from '../core/logger.js';
import type { CreateResult, SessionTable } from '../core/sessions.js';
import { type Caller, isName, tenantOf, tenantRefusal } from '../core/tenancy.js';
import { principalSourceRefusal } from '../core/trusted-proxies.js';
import type { PlacementTicket } from '../fleet/types.js';
import { type Expired, type Hop, markFromHeader, principalPinId, type Router } from '../routing/index.js';
import type { Admission, Reservation } from './admission.js';
import { classify, type Route } from './affinity.js';
import { FORWARDED_BY_HEADER } from './fleet.js';
import { clearedCookie, isSecure, sessionCookie } from './headers.js';
import { type HostRules, hostRefusal, hostRules } from './host-check.js';
import { isModernRequest } from './mcp2026.js';
import type { HttpFrontSettings } from './options.js';
import type { Ticket } from './ticket.js';

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
/** MCP 2026-07-28: the long-lived POST on whose response server notifications arrive. */
const LISTEN_METHOD = 'subscriptions/listen';
/** What undici accepts in a request target (it refuses controls and anything above U+00FF). */
const INVALID_TARGET = /[^\u0021-\u00ff]/;

/** Admission's answer: go on (with a cookie to set), or refuse (clearing the cookie). */
export type Admitted = { ok: true; setCookie?: string } | { ok: false; error: AgentError; clearCookie?: boolean };

/** A request's session route, as the affinity rules classify it. */
export type SessionRoute = Extract<Route, { kind: 'session' }>;

export interface IntakeHost {
  readonly settings: HttpFrontSettings;
  readonly sessions: SessionTable;
  readonly admission: Admission;
  readonly logger: Logger;
  readonly router: Router;
  /** The upstream answered an `initialize` without a session id: requests pass without affinity. */
  readonly statelessUpstream: boolean;
  sessionCreated(session: import('../core/sessions.js').Session, requestId: string): void;
}

export class Intake {
  private readonly requestIdPrefix = randomBytes(4).toString('hex');
  private requestCounter = 0;
  private readonly collaborative: boolean;
  /** Session isolation over MCP Streamable HTTP: 2026 requests are pinned to their principal's instance. */
  private readonly pinPrincipals: boolean;
  private readonly hostRules: HostRules;
  /** JWT mode: the verifier, and the paths the Protected Resource Metadata is served at. */
  private readonly jwt: JwtVerifier | undefined;
  private readonly metadata: { paths: Set<string>; body: string } | undefined;

  constructor(
    private readonly host: IntakeHost,
    private readonly context: Pick<AgentContext, 'config' | 'policy' | 'jwt'>,
  ) {
    this.collaborative = context.policy.collaborative?.enabled === true;
    this.pinPrincipals =
      context.policy.isolation === 'session' && context.policy.affinity.type === 'mcp-streamable-http';
    this.jwt = context.jwt;
    const jwt = context.config.jwt;
    this.metadata = jwt && {
      paths: resourceMetadataPaths(jwt),
      body: JSON.stringify(protectedResourceMetadata(jwt)),
    };
    const { listen, allowedHosts, allowedOrigins } = context.config;
    this.hostRules = hostRules({ listenHost: listen.host, allowedHosts, allowedOrigins });
  }

  requestIdOf(req: IncomingMessage): string {
    const given = req.headers['x-request-id'];
    if (typeof given === 'string' && REQUEST_ID.test(given)) return given;
    return `${this.requestIdPrefix}-${(++this.requestCounter).toString(36)}`;
  }

  /** How the affinity rules tie this request to its session. */
  classify(req: IncomingMessage, target: { path: string; query: string }, upgrade: boolean): Route {
    return classify(
      { method: req.method ?? 'GET', path: target.path, query: target.query, headers: req.headers, upgrade },
      {
        affinity: this.host.settings.affinity,
        statelessUpstream: this.host.statelessUpstream,
        handleHeader: this.host.settings.handleHeader,
      },
    );
  }

  /**
   * Under session isolation, an MCP 2026 request (no session of its own) is routed as its
   * principal's pinned session: one instance serves one principal (ADR 0015). Any other route
   * is returned as it is.
   */
  pinned(route: Route, req: IncomingMessage, caller: Caller): Route {
    if (!this.pinPrincipals || route.kind !== 'stateless' || !isModernRequest(req.headers)) return route;
    return { kind: 'session', id: principalPinId(caller), whenMissing: 'resume' };
  }

  /** A valid forwarding mark on the request, if any (an invalid one is ignored: never forwarded upstream). */
  hopOf(req: IncomingMessage, requestId: string): Hop | undefined {
    const value = req.headers[FORWARDED_BY_HEADER];
    if (value === undefined) return undefined;
    const checked = this.host.router.acceptMark(markFromHeader(value));
    if (checked.ok) return checked.mark;
    this.host.logger.warn({ reqId: requestId, reason: checked.reason }, 'ignored an invalid forwarding mark');
    return undefined;
  }

  /**
   * Who sent the request: the principal from `--principal-header`, its tenant from
   * `--tenant-header` or else `--tenant`. Refused: a missing or malformed principal header
   * (UNAUTHENTICATED), a malformed tenant header (UNAUTHENTICATED), another tenant under tenant
   * isolation (TENANT_FORBIDDEN). Before any of that, a Host or browser Origin the agent does not
   * serve (HOST_FORBIDDEN, ORIGIN_FORBIDDEN: DNS-rebinding protection, see host-check.ts).
   */
  callerOf(req: IncomingMessage): Caller | AgentError | Promise<Caller | AgentError> {
    const misdirected = hostRefusal(this.hostRules, req.headers.host, req.headers.origin);
    if (misdirected) return misdirected;
    if (this.jwt) return this.tokenCaller(this.jwt, req);
    const { principalHeader, tenantHeader } = this.host.settings;
    let principal: string | undefined;
    if (principalHeader) {
      const untrusted = principalSourceRefusal(
        req,
        this.context.config,
        () => this.host.router.acceptMark(markFromHeader(req.headers[FORWARDED_BY_HEADER])).ok,
      );
      if (untrusted) return untrusted;
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

  /**
   * A request's claims under `policy.limits` beyond the concurrency slot: the caller's request
   * budget, the tool's call slot (`Mcp-Method` + `Mcp-Name`), no new `tools/call` while the
   * caller holds its task limit, and a stream place for a request that opens a stream.
   */
  private takeSlots(ticket: Ticket, req: IncomingMessage, sessionless: boolean): AgentError | undefined {
    const { budgets } = this.host.admission;
    const method = req.headers['mcp-method'];
    const name = req.headers['mcp-name'];
    if (method === 'tools/call' && ticket.caller) {
      const refused = budgets.mayStartTask(ticket.caller);
      if (refused) return refused;
    }
    const tool =
      typeof method === 'string' && typeof name === 'string' && budgets.toolLimit(toolKey(method, name)) !== undefined
        ? toolKey(method, name)
        : undefined;
    const error = ticket.takeSlot(tool);
    if (error) return error;
    // Its slot and budgets go back when the refused exchange finishes.
    return opensStream(req) ? ticket.claimStream(sessionless) : undefined;
  }

  /**
   * JWT mode: the caller a verified bearer token names (ADR 0020). Missing: UNAUTHENTICATED;
   * not a verifiable JWT: INVALID_TOKEN; both answered with `WWW-Authenticate` (reject.ts). A
   * token verified moments ago is answered at once, so the hot path stays synchronous.
   */
  private tokenCaller(jwt: JwtVerifier, req: IncomingMessage): Caller | AgentError | Promise<Caller | AgentError> {
    const token = bearerToken(req.headers.authorization);
    if (token === undefined) {
      return new AgentError('UNAUTHENTICATED', 'the request carries no bearer token (Authorization: Bearer <JWT>)');
    }
    if (token === 'malformed') return invalidToken('malformed');
    const admit = (caller: Caller | AgentError) =>
      caller instanceof AgentError
        ? caller
        : (tenantRefusal(this.context.policy, this.context.config, caller) ?? caller);
    const hit = jwt.cached(token);
    return hit ? admit(hit) : jwt.verify(token).then(admit);
  }

  /** JWT mode: the Protected Resource Metadata document (RFC 9728) when the request asks for it. */
  resourceMetadata(req: IncomingMessage, path: string): string | undefined {
    if (!this.metadata || (req.method !== 'GET' && req.method !== 'HEAD') || !this.metadata.paths.has(path)) {
      return undefined;
    }
    return hostRefusal(this.hostRules, req.headers.host, req.headers.origin) ? undefined : this.metadata.body;
  }

  /** Admission of a route that names no session (refused, stateless, the wrong transport). */
  admitWithoutSession(ticket: Ticket, route: Exclude<Route, SessionRoute>, req: IncomingMessage): Admitted {
    switch (route.kind) {
      case 'reject':
        return route.clearCookie
          ? { ok: false, error: route.error, clearCookie: true }
          : { ok: false, error: route.error };
      case 'stateless': {
        const error = this.takeSlots(ticket, req, true);
        return error ? { ok: false, error } : { ok: true };
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

  /**
   * Admission of a session the routing core said to serve here: its owner and tenant, a
   * concurrency slot. `missing`: the id is unknown here after all (it ended and was forgotten
   * meanwhile), for the caller to ask the routing core again.
   */
  admitSession(ticket: Ticket, route: SessionRoute, caller: Caller, req: IncomingMessage): Admitted | 'missing' {
    // A collaborative session may be used by any authenticated principal that knows its id; only
    // its creator may end it (MCP DELETE).
    const join =
      this.collaborative && !(req.method === 'DELETE' && this.host.settings.affinity.type === 'mcp-streamable-http');
    const found = this.host.admission.existing(route.id, caller.principal, route.whenMissing, join, caller.tenant);
    if (!found.ok) return { ok: false, error: found.error, clearCookie: route.whenMissing === 'reject-cookie' };
    if (!found.session) return 'missing';
    const error = this.takeSlots(ticket, req, false);
    if (error) return { ok: false, error };
    ticket.attach(found.session);
    return { ok: true };
  }

  /** Creates a placed session under the id the client chose (header affinity). */
  createSession(ticket: Ticket, id: string, caller: Caller, requestId: string, placement: PlacementTicket): Admitted {
    const error = this.reserve(ticket, caller, placement);
    if (error) return { ok: false, error };
    const reservation = ticket.reservation!;
    ticket.reservation = undefined;
    const committed = this.host.admission.commit(reservation, id);
    if (!committed.ok) return { ok: false, error: committed.error };
    ticket.attach(committed.value);
    this.host.sessionCreated(committed.value, requestId);
    return { ok: true };
  }

  /** Creates a placed session under a minted id, and the cookie that names it. */
  mintCookieSession(
    ticket: Ticket,
    caller: Caller,
    req: IncomingMessage,
    requestId: string,
    placement: PlacementTicket,
  ): Admitted {
    const id = this.host.router.mintSessionId();
    const created = this.createSession(ticket, id, caller, requestId, placement);
    if (!created.ok) return created;
    const { cookieName } = this.host.settings.affinity as { cookieName: string };
    return {
      ok: true,
      setCookie: sessionCookie(cookieName, id, {
        secure: isSecure(req),
        maxAgeSeconds: this.host.settings.cookieMaxAgeSeconds,
      }),
    };
  }

  /**
   * Holds a slot on this instance for a placed session (its id known now or named later by the
   * upstream), plus a concurrency slot.
   */
  reserve(ticket: Ticket, caller: Caller, placement: PlacementTicket): AgentError | undefined {
    const reserved = this.host.admission.reserve(caller.principal, placement);
    if (!reserved.ok) {
      this.host.router.cancel(placement);
      return reserved.error;
    }
    const error = ticket.takeSlot();
    if (error) {
      // Give the session slot back now, not when the refused response closes.
      this.host.admission.cancel(reserved.value);
      return error;
    }
    ticket.reservation = reserved.value;
    return undefined;
  }

  /**
   * Admission's `create` hook: registers a committed reservation's session through the routing
   * core (fleet-wide with Redis), which passes the placement's quota places to it. `open()`
   * creates the table entry before its first `await` (its contract), so the session exists when
   * this returns; a registry refusal later ends it (an ownership conflict).
   */
  openPlaced(id: string, reservation: Reservation, meta?: Record<string, unknown>): CreateResult {
    const { router, sessions } = this.host;
    const ticket = reservation.fleet ?? { principal: reservation.principal };
    if (sessions.lookup(id).state === 'active') {
      router.cancel(ticket);
      return { ok: false, reason: 'exists' };
    }
    router
      .open(ticket, id, {
        ...(reservation.principal !== undefined ? { principal: reservation.principal } : {}),
        ...(meta ? { meta } : {}),
      })
      .catch((error: unknown) =>
        this.host.logger.warn(
          { sessionId: id, err: error instanceof Error ? error.message : String(error) },
          'the coordinator refused a new session',
        ),
      );
    const session = sessions.get(id);
    if (session) return { ok: true, session };
    return { ok: false, reason: sessions.isDraining ? 'draining' : 'full' };
  }

  /**
   * The routing core's `expired` decision in HTTP terms: the catalogue answer, or with cookie
   * affinity INVALID_COOKIE (whatever the expired status) and the cookie cleared, so the client
   * drops it and gets a new one.
   */
  expired(req: IncomingMessage, decision: Expired): [AgentError, string | undefined] {
    const { affinity } = this.host.settings;
    if (affinity.type !== 'cookie') return [decision.error, undefined];
    const { reason } = decision;
    const ended = reason === 'owner-lost' || reason === 'unknown' ? undefined : reason;
    const where = decision.fleet ? 'no live session of the fleet' : 'no session on this instance';
    return [
      ended
        ? cookieEndedError(ended)
        : new AgentError('INVALID_COOKIE', `the cookie names ${where}`, { details: { reason } }),
      clearedCookie(affinity.cookieName, { secure: isSecure(req) }),
    ];
  }

  /** The cookie to clear with a refusal, under cookie affinity. */
  clearCookieFor(admitted: Admitted, req: IncomingMessage): string | undefined {
    if (admitted.ok || !admitted.clearCookie || this.host.settings.affinity.type !== 'cookie') return undefined;
    return clearedCookie(this.host.settings.affinity.cookieName, { secure: isSecure(req) });
  }
}

/**
 * Whether a request opens a long-lived stream: an MCP 2026 `subscriptions/listen` (named by its
 * `Mcp-Method` header, which the server checks against the body), or a GET asking for an event
 * stream (MCP 2025 GET streams).
 */
export function opensStream(req: IncomingMessage): boolean {
  if (req.headers['mcp-method'] === LISTEN_METHOD) return true;
  const accept = req.headers.accept;
  return req.method === 'GET' && typeof accept === 'string' && accept.includes('text/event-stream');
}

/** The request target as path and query, or why it cannot be proxied. */
export function checkTarget(url: string | undefined): { path: string; query: string } | AgentError {
  if (url === undefined || url.charCodeAt(0) !== 0x2f || INVALID_TARGET.test(url)) {
    return new AgentError('BAD_REQUEST', 'the request target must be an absolute path such as /mcp');
  }
  const q = url.indexOf('?');
  return q < 0 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q + 1) };
}

/** The client's body stream, or nothing when the request has none. */
export function bodyOf(req: IncomingMessage): Readable | null {
  const length = req.headers['content-length'];
  if (length !== undefined) return length === '0' ? null : req;
  return req.headers['transfer-encoding'] !== undefined ? req : null;
}
