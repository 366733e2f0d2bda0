/**
 * One client request proxied to the instance: an undici dispatch handler that streams the
 * response to the client chunk by chunk as the upstream flushes it (backpressure both ways, no
 * buffering), plus the session events that ride on a response — the `Mcp-Session-Id` of an
 * `initialize`, the `endpoint` event of a legacy SSE stream, the end of a DELETE.
 *
 * Everything the request holds lives in its `Ticket`, released once on the response's `close`
 * event, which Node emits whether the response completed, the client went away or the agent
 * cut it short.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { Dispatcher, Pool } from 'undici';
import { AgentError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Refusals } from '../core/refusals.js';
import type { Session } from '../core/sessions.js';
import type { RequestSpan } from '../core/tracing.js';
import type { LockLease } from '../fleet/types.js';
import { isPrincipalPin } from '../routing/index.js';
import { isValidSessionId, sessionIdFromEndpoint } from './affinity.js';
import type { GatedBody } from './body-gate.js';
import type { ExchangeKind, Outcome, PeerTarget } from './exchange-types.js';
import { NOT_OWNER_HEADER } from './fleet.js';
import { appendSetCookie, forwardedRequestHeaders, forwardedResponseHeaders } from './headers.js';
import { opensStream } from './intake.js';
import { BodyTooLargeError, bodyTooLarge, limitedBody } from './limits.js';
import type { HttpFrontSettings } from './options.js';
import { challengeFor, renderError, sendError } from './reject.js';
import type { ResultTap, TaskCreated } from './result-tap.js';
import { EndpointScanner } from './sse-scanner.js';
import type { Closable } from './streams.js';
import { TaskWatch } from './task-watch.js';
import { Ticket, type TicketHost } from './ticket.js';
import { upstreamError } from './upstream.js';

export type { ExchangeKind, Outcome, PeerTarget } from './exchange-types.js';

export interface ExchangeHost extends TicketHost {
  readonly settings: HttpFrontSettings;
  readonly pool: Pool;
  /** The pool for requests that open a long-lived stream (`opensStream`): see `createUpstreamPool`. */
  readonly streamPool: Pool;
  readonly logger: Logger;
  readonly isDraining: boolean;
  /** Counts and logs the refusals for a limit (a body too large). */
  readonly refusals: Refusals;
  sessionCreated(session: Session, requestId: string): void;
  /** The upstream answered an `initialize` without a session id: it keeps no sessions. */
  upstreamIsStateless(): void;
  /** The agent refused a request (metrics, log). */
  rejected(error: AgentError, requestId: string, sessionId: string | undefined): void;
  /** An upstream session the agent could not take (its slot went meanwhile): delete it there. */
  orphaned(id: string, path: string): void;
  finished(exchange: Exchange, outcome: Outcome, seconds: number): void;
}

const EXCHANGE = Symbol('sessionfleet.exchange');
type ExchangeResponse = ServerResponse & { [EXCHANGE]?: Exchange };

function onResponseClose(this: ExchangeResponse): void {
  this[EXCHANGE]?.closed();
}

function onResponseDrain(this: ExchangeResponse): void {
  this[EXCHANGE]?.resume();
}

function isEventStream(headers: IncomingHttpHeaders): boolean {
  const type = headers['content-type'];
  return typeof type === 'string' && type.startsWith('text/event-stream');
}

export class Exchange implements Dispatcher.DispatchHandler, Closable {
  readonly ticket: Ticket;
  readonly started = performance.now();
  kind: ExchangeKind = 'plain';
  /** The URL path the request went to (the MCP endpoint, for the upstream DELETE). */
  path = '/';
  /** A `Set-Cookie` for the response (cookie affinity, new session). */
  setCookie: string | undefined;
  status = 0;
  /**
   * A modern (MCP 2026) request served here: its response's results are read as they pass
   * (`result-tap.ts`), and a task it creates is recorded (`learn`) before the client can see it.
   */
  results: { readonly tap: ResultTap; learn(task: TaskCreated): Promise<void> } | undefined;
  /**
   * A modern request's stray `Mcp-Session-Id`: ignored (the spec says so) and not passed on, so
   * it cannot reach a session the agent did not admit this caller to.
   */
  dropSessionId = false;
  /** Writes held back until a task was recorded, in order. */
  private held: Promise<void> | undefined;
  /** The body, read under the body rule before admission (`body-gate.ts`); unset without a gate. */
  body: GatedBody | undefined;
  /** This request's span, when tracing is on (`agent/core/tracing.ts`). */
  trace: RequestSpan | undefined;
  /**
   * The whole body, when tracing read it before routing for its `_meta` trace context (ADR 0026):
   * it is then served from memory, and the body rule has nothing left to gate.
   */
  prereadBody: Buffer | undefined;
  /** Once the response is a stream: when it opened and last carried a byte (sessionless streams' bounds). */
  openedAt: number | undefined;
  lastActiveAt: number | undefined;
  private controller: Dispatcher.DispatchController | undefined;
  private scanner: EndpointScanner | undefined;
  private upstreamEnded = false;
  private clientGone = false;
  private selfAborted = false;
  private done = false;
  private outcome: Outcome = 'ok';
  /** Forwards to another agent: each dispatch has its own generation, so a retried one is silenced. */
  private generation = 0;
  private peer: PeerTarget | undefined;
  /** The collaborative lock this write holds (released once, when the exchange finishes). */
  private lease: LockLease | undefined;
  /** `name, value` pairs added to the upstream request (the fencing token). */
  private upstreamExtra: string[] | undefined;
  /** Reads a tools/call or tasks/* response for the task budgets (only with a task limit). */
  private taskWatch: TaskWatch | undefined;
  /** Aborted when the client goes away: ends a wait for the lock. Created only when needed. */
  private clientController: AbortController | undefined;

  constructor(
    private readonly host: ExchangeHost,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly requestId: string,
  ) {
    this.ticket = new Ticket(host);
    // One shared listener, not a closure per request: the exchange rides on the response.
    (res as ExchangeResponse)[EXCHANGE] = this;
    res.on('close', onResponseClose);
  }

  get sessionId(): string | undefined {
    return this.ticket.session?.id;
  }

  get isDone(): boolean {
    return this.done;
  }

  /**
   * Aborts when the response closes (the client went away, or the exchange ended): the routing
   * core's `Requester.signal`, created only when something waits (off the hot path).
   */
  get signal(): AbortSignal {
    this.clientController ??= new AbortController();
    if (this.done) this.clientController.abort();
    return this.clientController.signal;
  }

  /**
   * The collaborative lock was granted for this write: its token goes upstream as `header`, a lost
   * lock aborts the exchange, and the lease is released when the exchange finishes. False (and
   * the lease released now) if the exchange already finished while it waited.
   */
  holdLease(lease: LockLease, header: string, lost: () => AgentError): boolean {
    if (this.done || this.lease) {
      void lease.release().catch(() => {});
      return false;
    }
    this.lease = lease;
    this.upstreamExtra = [header, String(lease.token)];
    const onLost = () => {
      if (this.done) return;
      this.host.logger.warn(
        { reqId: this.requestId, sessionId: this.sessionId, token: lease.token },
        'a collaborative write lost its lock: aborted',
      );
      this.abortUpstream();
      if (this.res.headersSent) {
        this.outcome = 'upstream-error';
        this.res.destroy();
        return;
      }
      this.reject(lost());
    };
    if (lease.signal.aborted) onLost();
    else lease.signal.addEventListener('abort', onLost, { once: true });
    return true;
  }

  /** Refuses the request with a catalogue error. */
  reject(error: AgentError, setCookie?: string): void {
    if (this.done) return;
    this.outcome = 'rejected';
    this.trace?.refused(error.code);
    this.host.rejected(error, this.requestId, this.sessionId);
    const { settings } = this.host;
    sendError(
      this.res,
      renderError(error, {
        jsonRpc: settings.jsonRpcErrors,
        expiredSessionStatus: settings.expiredSessionStatus,
        requestId: this.requestId,
        ...(setCookie ? { setCookie } : {}),
        ...(settings.jwt ? { challenge: challengeFor(settings.jwt) } : {}),
      }),
    );
  }

  /**
   * The body held to `--http-max-body-bytes` on its way out; undefined (and the request refused)
   * when what was already read is too large.
   */
  private limited(body: Readable | Buffer | null): Readable | Buffer | null | undefined {
    const limited = limitedBody(body, this.req, this.host.settings.limits.maxBodyBytes);
    if (!(limited instanceof AgentError)) return limited;
    this.refuseBody(this.host.settings.limits.maxBodyBytes);
    return undefined;
  }

  /** 413 for a body over the limit, counted and logged once; the connection closes (its rest is never read). */
  refuseBody(limit: number, declared?: number): void {
    this.host.refusals.refuse(
      'body-too-large',
      { reqId: this.requestId, remote: this.req.socket.remoteAddress, limit, ...(declared ? { declared } : {}) },
      'refused an HTTP request: body too large',
    );
    if (!this.res.headersSent) this.res.setHeader('connection', 'close');
    this.reject(bodyTooLarge(limit, declared));
  }

  /** Answers the request itself (the Protected Resource Metadata document): nothing goes upstream. */
  answer(status: number, headers: Record<string, string>, body: string): void {
    if (this.done) return;
    this.upstreamEnded = true;
    this.status = status;
    this.res.writeHead(status, {
      ...headers,
      'content-length': String(Buffer.byteLength(body)),
      'x-request-id': this.requestId,
    });
    this.res.end(body);
  }

  /** Sends the request upstream; `body` is the client's stream, bytes already read, or nothing. */
  forward(whole: Readable | Buffer | null): void {
    if (this.done) return;
    const body = this.limited(whole);
    if (body === undefined) return;
    const { req, host } = this;
    try {
      const headers = forwardedRequestHeaders(req, {
        upstreamHost: host.settings.upstreamHost,
        requestId: this.requestId,
        dropAuthorization: host.settings.stripAuthorization,
        ...(this.upstreamExtra ? { extra: this.upstreamExtra } : {}),
        ...(this.dropSessionId ? { drop: 'mcp-session-id' } : {}),
        ...(this.trace ? { trace: this.trace.context } : {}),
      });
      const pool = opensStream(req) ? host.streamPool : host.pool;
      pool.dispatch({ path: req.url ?? '/', method: req.method ?? 'GET', headers, body }, this);
    } catch (error) {
      this.onResponseError(undefined, error as Error);
    }
  }

  /**
   * Sends the request to the agent that owns (or will own) its session. `body` must be bytes or
   * nothing when `target.retry` is given (a retry sends it again).
   */
  forwardToPeer(whole: Readable | Buffer | null, target: PeerTarget): void {
    if (this.done) return;
    const body = this.limited(whole);
    if (body === undefined) return;
    const { req } = this;
    this.peer = target;
    this.upstreamEnded = false;
    this.selfAborted = false;
    const generation = ++this.generation;
    const live = () => generation === this.generation;
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart: (controller) => {
        if (live()) this.onRequestStart(controller);
        else controller.abort(new Error('a retried forward'));
      },
      onResponseStart: (controller, statusCode, headers) => {
        if (live()) this.onResponseStart(controller, statusCode, headers);
      },
      onResponseData: (controller, chunk) => {
        if (live()) this.onResponseData(controller, chunk);
      },
      onResponseEnd: () => {
        if (live()) this.onResponseEnd();
      },
      onResponseError: (controller, error) => {
        if (live()) this.onResponseError(controller, error);
      },
    };
    try {
      const headers = forwardedRequestHeaders(req, {
        upstreamHost: target.host,
        requestId: this.requestId,
        extra: target.headers,
        ...(this.dropSessionId ? { drop: 'mcp-session-id' } : {}),
        ...(this.trace ? { trace: this.trace.context } : {}),
      });
      target.pool.dispatch({ path: req.url ?? '/', method: req.method ?? 'GET', headers, body }, handler);
    } catch (error) {
      this.onResponseError(undefined, error as Error);
    }
  }

  /** Gives up the current forward and lets the host route again; false if that is not possible. */
  private retryPeer(controller: Dispatcher.DispatchController | undefined): boolean {
    const peer = this.peer;
    if (!peer?.retry || this.done || this.res.headersSent) return false;
    this.peer = { ...peer, retry: undefined };
    this.generation++;
    if (controller && !controller.aborted) controller.abort(new Error('routing again'));
    this.controller = undefined;
    return peer.retry();
  }

  /** Ends the exchange from the agent's side: its session ended, or the agent shuts down. */
  close(): void {
    if (this.done) return;
    this.abortUpstream();
    if (!this.res.headersSent) this.res.destroy();
    else if (!this.res.writableEnded) this.res.end();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.done) this.abortUpstream();
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.controller = controller;
    if (statusCode < 200 || this.done) return;
    if (this.peer && headers[NOT_OWNER_HEADER] !== undefined && this.retryPeer(controller)) return;
    this.status = statusCode;
    if (this.kind === 'mcp-initialize' && !this.onInitializeAnswer(statusCode, headers)) return;
    // A GET stream, or a request admitted as one (an MCP 2026 `subscriptions/listen`): it carries
    // no work once streaming. A POST answered with an event stream (a `tools/call` streaming its
    // progress) is work in progress and keeps its slot (ADR 0015).
    const stream = isEventStream(headers) && (this.req.method === 'GET' || this.ticket.claimedStream);
    if (this.kind === 'sse-open' && !(stream && statusCode === 200)) this.ticket.cancelReservation();

    const out = forwardedResponseHeaders(headers);
    if (this.setCookie) appendSetCookie(out, this.setCookie);
    out['x-request-id'] = this.requestId;
    if (this.host.isDraining) out.connection = 'close';
    this.res.writeHead(statusCode, out);
    if (this.results && this.peer) this.results = undefined;
    this.results?.tap.start(statusCode, headers['content-type'] as string | undefined);

    if (statusCode === 200) {
      this.taskWatch = TaskWatch.of(this.host.admission.budgets, this.ticket.caller, this.req.headers);
    }
    if (stream) {
      // Send the headers now: an event stream may stay silent for a long time.
      this.res.flushHeaders();
      this.openedAt = this.lastActiveAt = Date.now();
      this.ticket.toStream(this);
      if (this.kind === 'sse-open' && this.ticket.reservation) {
        this.scanner = new EndpointScanner(this.host.settings.endpointScanBytes);
      }
    }
    const session = this.ticket.session;
    if (
      statusCode === 404 &&
      session &&
      this.kind === 'plain' &&
      !isPrincipalPin(session.id) &&
      this.host.settings.affinity.type === 'mcp-streamable-http'
    ) {
      // The server no longer knows the session (it restarted): free the slot, the client re-initializes.
      this.host.sessions.end(session.id, 'upstream-closed');
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    // Nothing more once the response is over (a refused initialize, a stream the agent ended).
    if (this.done || this.res.writableEnded) return;
    if (this.scanner) this.scan(chunk);
    if (this.openedAt !== undefined) this.lastActiveAt = Date.now();
    this.taskWatch?.push(chunk);
    if (this.results) return void this.tapped(controller, chunk);
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', onResponseDrain);
    }
  }

  onResponseEnd(): void {
    this.upstreamEnded = true;
    this.taskWatch?.end();
    this.taskWatch = undefined;
    if (this.scanner) {
      this.scanner = undefined;
      this.ticket.cancelReservation();
    }
    if (this.results) {
      const { write, task } = this.results.tap.end();
      this.after(task, write, true);
      return;
    }
    if (!this.done) this.res.end();
  }

  /** A chunk of a modern response: written now, or after the task it completes is recorded. */
  private tapped(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const { write, task } = this.results!.tap.push(chunk);
    if (!task && !this.held) {
      if (write && !this.res.write(write)) {
        controller.pause();
        this.res.once('drain', onResponseDrain);
      }
      return;
    }
    controller.pause();
    this.after(task, write, false).then(() => controller.resume());
  }

  /** Records `task` (if any), then writes `write` (and ends the response), after what is held. */
  private after(task: TaskCreated | undefined, write: Buffer | undefined, end: boolean): Promise<void> {
    const learn = this.results?.learn;
    const previous = this.held ?? Promise.resolve();
    const next = previous
      .then(() => (task && learn ? learn(task) : undefined))
      .catch((error: unknown) =>
        this.host.logger.warn(
          { reqId: this.requestId, taskId: task?.taskId, err: error instanceof Error ? error.message : String(error) },
          'could not record a new task in the fleet; it is routable on this instance only',
        ),
      )
      .then(() => {
        if (this.done || this.res.writableEnded) return;
        if (write) this.res.write(write);
        if (end) this.res.end();
      });
    this.held = next;
    return next;
  }

  /** Answers the request here with a JSON body (a protocol answer the agent gives itself). */
  answerJson(status: number, body: string): void {
    if (this.done || this.res.headersSent) return;
    this.outcome = 'rejected';
    this.res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'cache-control': 'no-store',
      'x-request-id': this.requestId,
    });
    this.res.end(body);
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    this.upstreamEnded = true;
    if (this.selfAborted || this.done) return;
    const tooLarge = error instanceof BodyTooLargeError ? error : error.cause;
    if (tooLarge instanceof BodyTooLargeError) {
      // The client's fault, not the upstream's: nothing to retry, no placement to give back first.
      this.peer?.failed?.();
      if (this.res.headersSent) this.res.destroy();
      else this.refuseBody(tooLarge.limit);
      return;
    }
    if (this.peer && this.retryPeer(_controller)) return;
    this.peer?.failed?.();
    this.outcome = 'upstream-error';
    this.host.logger.warn(
      { reqId: this.requestId, sessionId: this.sessionId, err: error.message, code: (error as { code?: string }).code },
      'upstream request failed',
    );
    if (this.res.headersSent) {
      this.res.destroy();
      return;
    }
    const rejection = this.peer
      ? new AgentError('UPSTREAM_UNAVAILABLE', 'the agent of the instance that holds this session is not answering', {
          retryAfterSeconds: 1,
          details: { cause: String((error as { code?: unknown }).code ?? error.name) },
        })
      : upstreamError(error, this.host.settings);
    this.reject(rejection);
    this.outcome = rejection.code === 'BAD_REQUEST' ? 'rejected' : 'upstream-error';
  }

  /** The client can take more of the response. */
  resume(): void {
    this.controller?.resume();
  }

  /** The response is over: completed, cut short by the agent, or the client went away. */
  closed(): void {
    this.clientController?.abort();
    if (!this.upstreamEnded) {
      this.clientGone = true;
      this.abortUpstream();
    }
    this.finish();
  }

  private abortUpstream(): void {
    const controller = this.controller;
    if (controller && !controller.aborted && !this.upstreamEnded) {
      this.selfAborted = true;
      controller.abort(new Error('the client side of the exchange closed'));
    }
  }

  /** The upstream answered an `initialize`: take the session it assigned. False: the client was refused. */
  private onInitializeAnswer(statusCode: number, headers: IncomingHttpHeaders): boolean {
    const reservation = this.ticket.reservation;
    this.ticket.reservation = undefined;
    const id = headers['mcp-session-id'];
    if (!reservation || statusCode >= 300 || id === undefined) {
      if (reservation) this.host.admission.cancel(reservation);
      if (statusCode < 300 && id === undefined) this.host.upstreamIsStateless();
      return true;
    }
    const refuse = (error: AgentError) => {
      this.abortUpstream();
      this.reject(error);
      return false;
    };
    if (!isValidSessionId(id)) {
      this.host.admission.cancel(reservation);
      return refuse(
        new AgentError(
          'UPSTREAM_UNAVAILABLE',
          'the instance assigned a session id the agent cannot route (not 1-128 visible ASCII characters)',
        ),
      );
    }
    // The path rides with the session into the registry: a restarted owner asks the upstream there.
    const committed = this.host.admission.commit(reservation, id, { mcpPath: this.path });
    if (!committed.ok) {
      this.host.orphaned(id, this.path);
      return refuse(committed.error);
    }
    const session = committed.value;
    session.meta.mcpPath ??= this.path;
    this.ticket.attach(session);
    this.host.sessionCreated(session, this.requestId);
    return true;
  }

  /** Looks for the SSE `endpoint` event; the session is created before the event reaches the client. */
  private scan(chunk: Buffer): void {
    const scanner = this.scanner!;
    const state = scanner.push(chunk);
    if (state === 'scanning') return;
    this.scanner = undefined;
    const reservation = this.ticket.reservation;
    this.ticket.reservation = undefined;
    if (!reservation) return;
    const id = state === 'found' ? sessionIdFromEndpoint(scanner.endpoint ?? '') : undefined;
    if (id === undefined) {
      this.host.admission.cancel(reservation);
      this.host.logger.warn(
        { reqId: this.requestId, endpoint: scanner.endpoint?.slice(0, 200) },
        'the SSE stream announced no usable endpoint with a sessionId; it carries no session',
      );
      return;
    }
    const committed = this.host.admission.commit(reservation, id);
    if (!committed.ok) {
      this.host.logger.warn(
        { reqId: this.requestId, sessionId: id, code: committed.error.code },
        'SSE session refused',
      );
      this.close();
      return;
    }
    this.ticket.streamJoins(committed.value);
    this.host.sessionCreated(committed.value, this.requestId);
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.scanner = undefined;
    this.res.off('drain', onResponseDrain);
    const session = this.ticket.session;
    this.ticket.release();
    // After the upstream exchange is over (or aborted): the next writer may go.
    if (this.lease) void this.lease.release().catch(() => {});
    if (session && this.kind === 'mcp-delete') this.host.sessions.end(session.id, 'deleted');
    // A legacy SSE session lives exactly as long as its stream.
    if (session && this.kind === 'sse-open') {
      this.host.sessions.end(session.id, this.upstreamEnded && !this.selfAborted ? 'upstream-closed' : 'deleted');
    }
    if (this.clientGone && this.outcome === 'ok' && !this.ticket.isStream) this.outcome = 'aborted';
    this.trace?.end(this.res.statusCode, this.outcome);
    this.host.finished(this, this.outcome, (performance.now() - this.started) / 1000);
  }
}
