/**
 * The request path of the HTTP front: one path, with and without `--redis`. Each request is
 * classified (affinity), routed by the routing core (`Router.decide` / `Router.place`), and the
 * decision carried out: served or created here (admission, then the upstream exchange), forwarded
 * to another agent with the signed mark, or refused. The hot path — a session held here — is
 * decided synchronously and streams the body straight through.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { Pool } from 'undici';
import { AgentError, sessionBusy, sessionNotFound } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Session, SessionTable } from '../core/sessions.js';
import type { Caller } from '../core/tenancy.js';
import { traceContextOfMcpBody } from '../core/trace-context.js';
import { hashedPrincipal, type RequestSpan, type Tracing } from '../core/tracing.js';
import { FLEET_HEADERS, type PlacementTicket } from '../fleet/types.js';
import {
  type Decision,
  type Forward,
  type Hop,
  type KeyDecision,
  markToHeader,
  type Router,
} from '../routing/index.js';
import type { Admission } from './admission.js';
import { containsInitialize, missingMcpSessionId, type Route } from './affinity.js';
import { mayCarryMetaTrace, type Peeked, readBodyUpTo } from './body.js';
import { type BodyWatch, GatedBody } from './body-gate.js';
import { Exchange, type ExchangeHost } from './exchange.js';
import { FORWARDED_BY_HEADER, NOT_OWNER_HEADER } from './fleet.js';
import { clearedCookie, isSecure } from './headers.js';
import { type Admitted, bodyOf, checkTarget, type Intake, opensStream, type SessionRoute } from './intake.js';
import { declaredTooLarge, refuseSlowBody } from './limits.js';
import { hasModernEnvelope, isModernRequest, isWellFormedTaskRequest, jsonRpcIdOf, unknownKeyBody } from './mcp2026.js';
import type { HttpFrontSettings } from './options.js';
import { ResultTap } from './result-tap.js';

/** The request's server span: method and path (never the query, which may carry ids or tokens). */
function startSpan(
  tracing: Tracing,
  req: IncomingMessage,
  instanceId: string,
  from?: Parameters<Tracing['startRequest']>[3],
): RequestSpan {
  const method = req.method ?? 'GET';
  const url = req.url ?? '/';
  const query = url.indexOf('?');
  return tracing.startRequest(
    method,
    req.headers,
    {
      'http.request.method': method,
      'url.path': query < 0 ? url : url.slice(0, query),
      'sessionfleet.front': 'http',
      'sessionfleet.instance': instanceId,
    },
    from,
  );
}

/** Who asked (hashed) and whether another agent forwarded the request. */
function traceCaller(span: RequestSpan, caller: Caller, hop: Hop | undefined): void {
  span.set({
    'sessionfleet.hop': hop !== undefined,
    ...(caller.principal ? { 'enduser.id': hashedPrincipal(caller.principal) } : {}),
    ...(caller.tenant ? { 'sessionfleet.tenant': caller.tenant } : {}),
  });
}

/** Requests that change a collaborative session, serialized by its lock; GET/HEAD/OPTIONS are reads. */
const WRITE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

type Body = Readable | Buffer | null;
type KeyedRoute = Extract<Route, { kind: 'keyed' }>;
/** The largest modern JSON response read for its result (a task result is a few hundred bytes). */
const RESULT_TAP_BYTES = 64 * 1024;
const KEY_DECISION = { serve: 'local', forward: 'forwarded', 'unknown-key': 'unknown', refuse: 'refused' } as const;
const STATELESS = Object.freeze({ kind: 'stateless' }) as Extract<Route, { kind: 'stateless' }>;

/** What the request path needs from the front. */
export interface RequestPathHost extends ExchangeHost {
  readonly settings: HttpFrontSettings;
  readonly sessions: SessionTable;
  readonly admission: Admission;
  readonly logger: Logger;
  readonly router: Router;
  readonly intake: Intake;
  /** With `policy.collaborative.enabled`: writes are serialized by the session's lock. */
  readonly collaborative: boolean;
  /** Traces, when the `OTEL_*` environment turns them on. */
  readonly tracing: Tracing | undefined;
  /** The body rule's deadlines (ADR 0023); undefined with `--http-body-gate-bytes 0`. */
  readonly bodyWatch: BodyWatch | undefined;
  /** The pool to another agent (by its advertised URL); its stream pool for a request that opens a stream. */
  peer(advertise: string, stream?: boolean): { pool: Pool; host: string };
  requestStarted(): void;
  /** The request now in flight on `socket` (its timeout is answered through its response). */
  inFlightOn(socket: import('node:net').Socket, exchange: Exchange): void;
  /** A task was created upstream at `path` (the kill switch cancels it there). */
  taskCreated(taskId: string, path: string): void;
  /** A request naming a task or handle went where the routing core said (metrics). */
  keyDecided(kind: 'task' | 'handle', decision: 'local' | 'forwarded' | 'unknown' | 'refused'): void;
  internalError(
    target: { requestId: string; ticket: Exchange['ticket']; reject(error: AgentError): void },
    error: unknown,
  ): void;
}

export class RequestPath {
  constructor(private readonly host: RequestPathHost) {}

  readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const host = this.host;
    host.requestStarted();
    const exchange = new Exchange(host, req, res, host.intake.requestIdOf(req));
    host.inFlightOn(req.socket, exchange);
    if (host.tracing) {
      if (mayCarryMetaTrace(req, this.metaPeekBytes, this.mcpFront)) {
        // Tracing on, no traceparent header, a small MCP POST: its `_meta` may name the trace.
        this.routeAfterPeek(exchange, host.tracing).catch((error: unknown) => host.internalError(exchange, error));
        return;
      }
      exchange.trace = startSpan(host.tracing, req, host.router.instanceId);
    }
    this.routeNow(exchange);
  };

  /** Whether the front serves MCP (either transport): its POST bodies are JSON-RPC messages. */
  private get mcpFront(): boolean {
    const type = this.host.settings.affinity.type;
    return type === 'mcp-streamable-http' || type === 'mcp-sse';
  }

  /** The largest body read ahead for its `_meta` trace context (never beyond the body limit). */
  private get metaPeekBytes(): number {
    const { settings } = this.host;
    return Math.min(settings.initializePeekBytes, settings.limits.maxBodyBytes);
  }

  private routeNow(exchange: Exchange): void {
    try {
      const pending = this.route(exchange);
      if (pending) pending.catch((error: unknown) => this.host.internalError(exchange, error));
    } catch (error) {
      this.host.internalError(exchange, error);
    }
  }

  /**
   * Tracing on only: reads the (small) body first, so the span continues the trace its MCP
   * `params._meta` names (ADR 0026); the body is then served from memory. The body itself goes
   * upstream unchanged: only the `traceparent` header names the agent's span.
   */
  private async routeAfterPeek(exchange: Exchange, tracing: Tracing): Promise<void> {
    const limit = this.metaPeekBytes;
    const peeked = await readBodyUpTo(exchange.req, limit);
    // The client went away: its response's close already ended the exchange.
    if (!peeked || exchange.isDone) return;
    // Node holds a body to its Content-Length, which was within the limit: it is whole.
    if (!peeked.complete) return exchange.refuseBody(limit);
    exchange.prereadBody = peeked.bytes;
    exchange.trace = startSpan(tracing, exchange.req, this.host.router.instanceId, {
      meta: traceContextOfMcpBody(peeked.bytes.toString('utf8')),
      startTime: exchange.started,
    });
    this.routeNow(exchange);
  }

  /** Routes one request; returns a promise only when it has to wait (the fleet, the body). */
  private route(exchange: Exchange): Promise<void> | undefined {
    const { req } = exchange;
    const { intake } = this.host;
    const limit = this.host.settings.limits.maxBodyBytes;
    const declared = declaredTooLarge(req, limit);
    if (declared !== undefined) return void exchange.refuseBody(limit, declared);
    const hop = intake.hopOf(req, exchange.requestId);
    const target = checkTarget(req.url);
    if (target instanceof AgentError) return void exchange.reject(target);
    const metadata = intake.resourceMetadata(req, target.path);
    if (metadata !== undefined) {
      return void exchange.answer(
        200,
        { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'max-age=300' },
        metadata,
      );
    }
    const caller = intake.callerOf(req);
    if (caller instanceof Promise) return caller.then((c) => this.routeAs(exchange, target, hop, c));
    return this.routeAs(exchange, target, hop, caller);
  }

  /**
   * Routes a request once its caller is known (at once, or after its token was verified) and
   * its body is in, up to the gate's bound (ADR 0023): nothing is admitted before that.
   */
  private routeAs(
    exchange: Exchange,
    target: { path: string; query: string },
    hop: Hop | undefined,
    caller: Caller | AgentError,
  ): Promise<void> | undefined {
    if (caller instanceof AgentError) return void exchange.reject(caller);
    if (exchange.isDone) return undefined;
    const gated = this.gate(exchange);
    if (gated === true) return this.routeWithBody(exchange, target, hop, caller);
    return gated.then((ok) => (ok && !exchange.isDone ? this.routeWithBody(exchange, target, hop, caller) : undefined));
  }

  /** Reads a request's body up to the gate's bound under the body rule; true at once without a body. */
  private gate(exchange: Exchange): true | Promise<boolean> {
    const watch = this.host.bodyWatch;
    const { req } = exchange;
    if (watch === undefined || exchange.prereadBody !== undefined || bodyOf(req) === null) return true;
    const { refusals } = this.host;
    const body = new GatedBody(req, watch, (slow) =>
      refuseSlowBody(exchange, req, refusals, watch.pace, slow.received),
    );
    exchange.body = body;
    const filled = body.fill(this.host.settings.limits.bodyGateBytes);
    return filled === true ? true : Promise.resolve(filled);
  }

  /** The request's body to forward: read whole already (tracing), the gated one, or the client's stream. */
  private bodyOf(exchange: Exchange): Body {
    if (exchange.prereadBody) return exchange.prereadBody;
    return exchange.body ? exchange.body.forwardable() : bodyOf(exchange.req);
  }

  /**
   * The start of the body — all of it when tracing read it whole, from the gated body when there is
   * one (a body has one reader), else read now.
   */
  private peek(exchange: Exchange, limit: number): Promise<Peeked | undefined> {
    if (exchange.prereadBody) return Promise.resolve({ bytes: exchange.prereadBody, complete: true });
    return exchange.body ? exchange.body.peek(limit) : readBodyUpTo(exchange.req, limit);
  }

  private routeWithBody(
    exchange: Exchange,
    target: { path: string; query: string },
    hop: Hop | undefined,
    caller: Caller,
  ): Promise<void> | undefined {
    const { req } = exchange;
    const { intake, router } = this.host;
    if (exchange.trace) traceCaller(exchange.trace, caller, hop);
    exchange.ticket.caller = caller;
    exchange.path = target.path;
    const classified = intake.classify(req, target, false);
    if (
      (classified.kind === 'keyed' || classified.kind === 'stateless') &&
      req.headers['mcp-session-id'] !== undefined
    ) {
      exchange.dropSessionId = isModernRequest(req.headers);
    }
    const route = intake.pinned(classified, req, caller);
    switch (route.kind) {
      case 'session':
        return this.carryOut(
          exchange,
          route,
          caller,
          router.decide(route, caller, hop, exchange),
          this.bodyOf(exchange),
        );
      case 'mcp-sessionless-post':
        return this.sessionlessPost(exchange, caller, hop);
      case 'sse-open':
        return this.carryOut(exchange, route, caller, router.place(caller, hop, exchange), null);
      case 'mint-cookie':
        return this.carryOut(exchange, route, caller, router.place(caller, hop, exchange), this.bodyOf(exchange));
      case 'keyed':
        return this.carryOutKey(exchange, route, caller, router.decideKey(route.ref, caller, hop, exchange));
      default:
        if (route.kind === 'stateless' && isModernRequest(req.headers)) this.readResults(exchange, caller);
        return void this.serve(
          exchange,
          this.host.intake.admitWithoutSession(exchange.ticket, route, exchange.req),
          this.bodyOf(exchange),
        );
    }
  }

  /**
   * A modern request naming a task or handle: served here (where the key lives), forwarded to the
   * instance that holds it, or answered as the spec answers an unknown task.
   */
  private carryOutKey(
    exchange: Exchange,
    route: KeyedRoute,
    caller: Caller,
    decision: KeyDecision | Promise<KeyDecision>,
  ): Promise<void> | undefined {
    if (decision instanceof Promise) return decision.then((d) => this.carryOutKey(exchange, route, caller, d));
    const { req } = exchange;
    if (decision.kind !== 'left') this.host.keyDecided(route.ref.kind, KEY_DECISION[decision.kind]);
    switch (decision.kind) {
      case 'serve':
        this.readResults(exchange, caller);
        return void this.serve(
          exchange,
          this.host.intake.admitWithoutSession(exchange.ticket, STATELESS, req),
          this.bodyOf(exchange),
        );
      case 'forward':
        return this.forward(exchange, route, caller, decision, this.bodyOf(exchange));
      case 'unknown-key':
        return this.unknownKey(exchange, route);
      case 'refuse':
        return void exchange.reject(decision.error);
      case 'left':
        return undefined;
    }
  }

  /**
   * The spec's unknown-task answer, with the request's JSON-RPC id — for a well-formed task request
   * only: one the server would reject before looking for the task (headers that disagree with the
   * body, a client without the Tasks extension) gets the local server's own answer.
   */
  private async unknownKey(exchange: Exchange, route: KeyedRoute): Promise<void> {
    const peeked = await this.peek(exchange, this.host.settings.initializePeekBytes);
    if (!peeked || exchange.isDone) return;
    const text = peeked.complete ? peeked.bytes.toString('utf8') : '';
    if (route.ref.kind === 'task' && !isWellFormedTaskRequest(text, exchange.req.headers)) {
      const admitted = this.host.intake.admitWithoutSession(exchange.ticket, STATELESS, exchange.req);
      return this.serve(exchange, admitted, exchange.body ? exchange.body.forwardable() : peeked.bytes);
    }
    exchange.answerJson(200, unknownKeyBody(route.ref.kind, jsonRpcIdOf(text)));
  }

  /** A modern request served here: its results are read as they pass, its tasks learned. */
  private readResults(exchange: Exchange, caller: Caller): void {
    // A listen stream carries notifications, never a result worth reading.
    if (exchange.req.headers['mcp-method'] === 'subscriptions/listen') return;
    const router = this.host.router;
    exchange.results = {
      tap: new ResultTap(RESULT_TAP_BYTES),
      learn: (task) => {
        this.host.taskCreated(task.taskId, exchange.path);
        return router.learnKey({ kind: 'task', key: task.taskId }, caller, task.ttlMs);
      },
    };
  }

  /** Carries out the routing core's decision for a request (waiting for it first if need be). */
  private carryOut(
    exchange: Exchange,
    route: Route,
    caller: Caller,
    decision: Decision | Promise<Decision>,
    body: Body,
  ): Promise<void> | undefined {
    if (decision instanceof Promise) return decision.then((d) => this.carryOut(exchange, route, caller, d, body));
    exchange.trace?.set({
      'sessionfleet.decision': decision.kind,
      ...(decision.kind === 'forward' ? { 'sessionfleet.owner': decision.to.instanceId } : {}),
    });
    switch (decision.kind) {
      case 'serve': {
        const admitted = this.host.intake.admitSession(exchange.ticket, route as SessionRoute, caller, exchange.req);
        if (admitted !== 'missing') return void this.serve(exchange, admitted, body);
        // Gone and forgotten since the decision: routed again, as a first-seen id.
        const again = this.host.router.decide(route as SessionRoute, caller, undefined, exchange);
        return Promise.resolve(again).then((d) =>
          d.kind === 'serve' ? exchange.reject(sessionNotFound()) : this.carryOut(exchange, route, caller, d, body),
        );
      }
      case 'create':
        return void this.createHere(exchange, route, caller, decision.ticket, body);
      case 'forward':
        return this.forward(exchange, route, caller, decision, body);
      case 'expired': {
        if (decision.notOwner) exchange.res.setHeader(NOT_OWNER_HEADER, this.host.router.instanceId);
        return void exchange.reject(...this.host.intake.expired(exchange.req, decision));
      }
      case 'refuse':
        return void exchange.reject(decision.error);
      case 'left':
        return undefined;
    }
  }

  /** A new session placed here: created now (its id known) or reserved until the upstream names it. */
  private createHere(exchange: Exchange, route: Route, caller: Caller, ticket: PlacementTicket, body: Body): void {
    const { intake } = this.host;
    switch (route.kind) {
      case 'session':
        this.serve(exchange, intake.createSession(exchange.ticket, route.id, caller, exchange.requestId, ticket), body);
        return;
      case 'mint-cookie':
        this.serve(
          exchange,
          intake.mintCookieSession(exchange.ticket, caller, exchange.req, exchange.requestId, ticket),
          body,
        );
        return;
      default: {
        // MCP `initialize` (the body already read) or a legacy SSE stream: the upstream names the id.
        const error =
          intake.reserve(exchange.ticket, caller, ticket) ??
          (route.kind === 'sse-open' ? exchange.ticket.claimStream(false) : undefined);
        if (error) {
          exchange.reject(error);
          return;
        }
        exchange.kind = route.kind === 'sse-open' ? 'sse-open' : 'mcp-initialize';
        exchange.forward(body);
      }
    }
  }

  /** A session-less MCP POST: an `initialize` starts a session, anything else needs one. */
  private async sessionlessPost(exchange: Exchange, caller: Caller, hop: Hop | undefined): Promise<void> {
    const peeked = await this.peek(exchange, this.host.settings.initializePeekBytes);
    if (!peeked || exchange.isDone) return;
    const text = peeked.complete ? peeked.bytes.toString('utf8') : '';
    // A modern body under a legacy (or no) version header: the server negotiates, not the agent.
    if (hasModernEnvelope(text)) {
      this.readResults(exchange, caller);
      return this.serve(
        exchange,
        this.host.intake.admitWithoutSession(exchange.ticket, STATELESS, exchange.req),
        peeked.bytes,
      );
    }
    if (!peeked.complete || !containsInitialize(text)) {
      const route = missingMcpSessionId() as Extract<Route, { kind: 'reject' }>;
      return exchange.reject(route.error);
    }
    // Placement and quotas before the server creates anything.
    const decision = await this.host.router.place(caller, hop, exchange);
    return this.carryOut(exchange, { kind: 'mcp-sessionless-post' }, caller, decision, peeked.bytes);
  }

  /** Forwards an admitted request to this instance's upstream (or refuses it). */
  private serve(exchange: Exchange, admitted: Admitted, body: Body): void {
    const { req } = exchange;
    if (!admitted.ok) {
      exchange.reject(admitted.error, this.host.intake.clearCookieFor(admitted, req));
      return;
    }
    exchange.setCookie = admitted.setCookie;
    const session = exchange.ticket.session;
    const mcp = this.host.settings.affinity.type === 'mcp-streamable-http';
    // An MCP DELETE ends the session once it went upstream (not when refused for the lock).
    const deletes = session !== undefined && mcp && req.method === 'DELETE';
    if (session && mcp) {
      const version = req.headers['mcp-protocol-version'];
      if (session.meta.protocolVersion === undefined && typeof version === 'string' && version.length <= 32) {
        session.meta.protocolVersion = version;
      }
    }
    if (session && this.host.collaborative && WRITE_METHODS.has(req.method ?? 'GET')) {
      this.forwardUnderLock(exchange, session, body, deletes).catch((error: unknown) =>
        this.host.internalError(exchange, error),
      );
      return;
    }
    if (deletes) exchange.kind = 'mcp-delete';
    exchange.forward(body);
  }

  /**
   * A write to a collaborative session (SPEC.md §6), here at its owner: the routing core's lock
   * sequence, then the fencing token goes upstream and the lock — renewed by the lease — is held
   * until the exchange finishes.
   */
  private async forwardUnderLock(exchange: Exchange, session: Session, body: Body, deletes: boolean): Promise<void> {
    const id = session.id;
    const locked = await this.host.router.lockForWrite(id, exchange);
    switch (locked.kind) {
      case 'left':
        return;
      case 'refused':
        return exchange.reject(locked.error);
      case 'ended': {
        const cookie = this.host.settings.affinity.type === 'cookie';
        const found = this.host.admission.existing(
          id,
          session.principal,
          cookie ? 'reject-cookie' : 'reject',
          false,
          session.tenant,
        );
        const error = found.ok ? sessionNotFound() : found.error;
        return exchange.reject(
          error,
          cookie
            ? clearedCookie(this.host.settings.affinity.cookieName, { secure: isSecure(exchange.req) })
            : undefined,
        );
      }
      case 'held': {
        const lost = () => sessionBusy(id, 'the write lost its lock', 1);
        if (!exchange.holdLease(locked.lease, FLEET_HEADERS.fencingToken, lost)) return;
        if (deletes) exchange.kind = 'mcp-delete';
        exchange.forward(body);
      }
    }
  }

  /**
   * Sends the request to another agent with the signed mark. Not reachable, or "not the owner",
   * before anything reached the client: the routing core decides once more (with a body that can
   * be sent again; a streamed one cannot).
   */
  private async forward(
    exchange: Exchange,
    route: Route,
    caller: Caller,
    decision: Forward,
    body: Body,
  ): Promise<void> {
    const sent = decision.retry && body instanceof Readable ? await this.retryableBody(exchange, body) : body;
    if (sent === undefined) return decision.failed();
    const retry = decision.retry && !(sent instanceof Readable) ? decision.retry : undefined;
    const { pool, host } = this.host.peer(decision.to.advertise, opensStream(exchange.req));
    exchange.forwardToPeer(sent, {
      pool,
      host,
      headers: [FORWARDED_BY_HEADER, markToHeader(decision.mark)],
      failed: decision.failed,
      ...(retry
        ? {
            retry: () => {
              retry()
                .then((again) => this.carryOut(exchange, route, caller, again, sent))
                .catch((error: unknown) => this.host.internalError(exchange, error));
              return true;
            },
          }
        : {}),
    });
  }

  /**
   * The body of a request that may be forwarded and retried: read whole when small (the MCP
   * messages are), else left streaming (no retry then). Undefined: the client went away.
   */
  private async retryableBody(exchange: Exchange, body: Readable): Promise<Body | undefined> {
    const peeked = await this.peek(exchange, this.host.settings.initializePeekBytes);
    if (!peeked || exchange.isDone) return undefined;
    if (peeked.complete) return peeked.bytes;
    // The gated body's stream is unread yet: it carries the whole body.
    if (exchange.body) return body;
    const rest = body;
    return Readable.from(
      (async function* () {
        yield peeked.bytes;
        rest.resume();
        for await (const chunk of rest) yield chunk as Buffer;
      })(),
    );
  }
}
