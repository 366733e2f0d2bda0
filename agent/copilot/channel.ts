/**
 * What every part of one Copilot client connection shares: who the client is, its socket and its
 * own upstream connection to the CLI, the output to the client (in order, with backpressure both
 * ways) and the exchange of one request with the CLI. The parts — the connection phase
 * (`connection.ts`), session requests (`session-requests.ts`), fleet routing (`session-routing.ts`),
 * hops to other agents (`remote.ts`) and the CLI's messages (`cli-events.ts`) — each hold this one
 * channel rather than each other's fields.
 */
import type { Socket } from 'node:net';
import type { AgentContext } from '../core/context.js';
import { AgentError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Session } from '../core/sessions.js';
import { type TraceCarrier, traceCarrierOf, withoutTraceContext, withTraceContext } from '../core/trace-context.js';
import { type CallSpan, hashedPrincipal } from '../core/tracing.js';
import type { Budgets, Router } from '../routing/index.js';
import type { ControlChannel } from './control.js';
import type { FrameDecoderOptions } from './framing.js';
import type { HandshakeGate } from './gate.js';
import type { JsonRpcId, JsonRpcRequest, JsonRpcResponse } from './jsonrpc.js';
import type { RouteOptions } from './methods.js';
import type { Owner } from './owners.js';
import { type PeerHandlers, RpcPeer } from './peer.js';
import type { Attachment, CopilotState, Slot, Turn } from './state.js';
import type { Upstream } from './upstream.js';

/**
 * The calls whose params carry W3C trace context in the Copilot SDK (`onGetTraceContext`): with
 * tracing on, the CLI gets the agent's span there instead of the client's (ADR 0026).
 */
const TRACED_PARAMS: ReadonlySet<string> = new Set(['session.create', 'session.resume', 'session.send']);

/** The principal of every client when the agent runs without `--principals`. */
export const ANONYMOUS_PRINCIPAL = 'anonymous';

/** What the parts of a connection need from the front. */
export interface ChannelOptions {
  context: AgentContext;
  state: CopilotState;
  /** Where each session request goes (the fleet's rules, the same with and without `--redis`). */
  router: Router;
  /** What the policy lets through besides the method table's classes. */
  methods: RouteOptions;
  control: ControlChannel;
  logger: Logger;
  upstream: { host: string; port: number; token: string | undefined };
  /** Framing limits of the connections to the CLI (the client's own come from `gate`). */
  frame: FrameDecoderOptions;
  /** The limits before and after `connect` (ADR 0017). */
  gate: HandshakeGate;
  /**
   * `policy.limits` (the routing layer's budgets, fleet-wide with `--redis`, ADR 0025): a
   * principal's and tenant's calls in flight, turns included.
   */
  budgets: Budgets;
}

export interface ForwardOptions {
  /** The loaded session this request acts on: busy until the response. */
  session?: Session;
  /** A `session.send`: the slot belongs to the turn, which outlives the response. */
  turn?: Turn;
  /** Rewrites a successful result before the client sees it. */
  transform?: (result: unknown) => unknown | Promise<unknown>;
  /** Bookkeeping once the response is in, before the client sees it. */
  after?: (response: JsonRpcResponse) => void | Promise<void>;
  /** The upstream connection closed before the response. */
  abandoned?: () => void;
}

export type Phase = 'new' | 'connecting' | 'ready' | 'closing' | 'closed';

type Outgoing = Buffer | object;

let connectionIds = 0;

export class ClientChannel implements Attachment {
  readonly connectionId = ++connectionIds;
  readonly log: Logger;
  readonly peer: RpcPeer;
  phase: Phase = 'new';
  upstream: Upstream | undefined;
  principalName: string | undefined;
  /** The principal's tenant: its own (`--principals`), else the instance's `--tenant`. */
  tenant: string | undefined;
  /** The client's token, kept (never logged) to authenticate the hops to other agents as this client. */
  clientToken: unknown;
  /** Set when this connection is a hop from another agent of the fleet (a verified mark). */
  hopFrom: string | undefined;
  /** Client request id → the connection it went out on and its id there, for `$/cancelRequest`. */
  readonly inFlight = new Map<JsonRpcId, { upstream: Upstream; id: number }>();
  /** The params of each session's last successful create/resume, to resume it on a new owner (`replayParams`). */
  readonly loadParams = new Map<string, unknown>();
  /** Sessions this connection holds on the CLI (created or resumed here). */
  readonly held = new Set<string>();
  /** Aborted when the client's connection closes: ends what waits on its behalf (the lock queue). */
  readonly clientGone = new AbortController();
  /** Spans of the calls in flight, by the client's id, when tracing is on. */
  private readonly spans = new Map<JsonRpcId, CallSpan>();
  private outTail: Promise<void> | undefined;

  constructor(
    socket: Socket,
    readonly options: ChannelOptions,
    handlers: PeerHandlers,
  ) {
    this.log = options.logger.child({ connection: this.connectionId });
    // A stranger's frames are small until its connect succeeds (`authenticated`).
    this.peer = new RpcPeer(socket, handlers, { maxFrameBytes: options.gate.limits.handshakeFrameBytes });
    socket.on('drain', () => this.updateFlow());
  }

  /** `connect` succeeded: the connection may send frames up to the authenticated limit. */
  authenticated(): void {
    this.peer.frameLimit = this.options.gate.limits.maxFrameBytes;
  }

  /**
   * Backpressure both ways, so a connection never makes the agent hold more than a socket's
   * buffer of output for it: while the client is not taking what is written to it, neither its
   * own requests (whose answers would pile up) nor the CLI's output are read; while the CLI is
   * not taking what is written to it, the client's requests are not read.
   */
  updateFlow(): void {
    const client = this.peer.socket;
    const clientFull = client.writableNeedDrain;
    const upstreamFull = this.upstream?.socket.writableNeedDrain ?? false;
    if (clientFull || upstreamFull) client.pause();
    else if (!this.peer.isHalted && this.phase !== 'closing' && this.phase !== 'closed') client.resume();
    if (clientFull) this.upstream?.socket.pause();
    else this.upstream?.socket.resume();
  }

  get principal(): string | undefined {
    return this.principalName;
  }

  /** The authenticated user: its principal in its tenant (only once `connect` succeeded). */
  get user(): Owner {
    return { principal: this.principalName!, tenant: this.tenant };
  }

  /** Attachment: lets go of the session on the CLI, for an expiry, eviction or drain. */
  detachUpstream(sessionId: string): Promise<void> {
    this.held.delete(sessionId);
    const upstream = this.upstream;
    if (!upstream || upstream.isClosed) return Promise.resolve();
    return upstream.call('session.detach', { sessionId }, AbortSignal.timeout(5000)).then(
      () => {
        this.log.debug({ sessionId }, 'detached the session on the Copilot CLI');
      },
      (error: unknown) => {
        this.log.warn({ sessionId, err: errorText(error) }, 'could not detach the session on the Copilot CLI');
      },
    );
  }

  /** Sends a client request to the CLI on this connection's upstream and its answer back. */
  forward(request: JsonRpcRequest, slot: Slot, options: ForwardOptions = {}): void {
    const upstream = this.upstream;
    const { context } = this.options;
    const started = performance.now();
    const finish = () => {
      if (options.session) context.sessions.endRequest(options.session);
      if (!options.turn) slot.release();
    };
    if (!upstream) {
      finish();
      options.turn?.release();
      options.abandoned?.();
      this.reject(request.id, new AgentError('UPSTREAM_UNAVAILABLE', 'the agent has no connection to the Copilot CLI'));
      return;
    }
    const span = this.spans.size > 0 ? this.spans.get(request.id) : undefined;
    const params =
      span && TRACED_PARAMS.has(request.method) ? withTraceContext(request.params, span.context) : request.params;
    const upstreamId = upstream.forward(request.method, params, (response) => {
      this.inFlight.delete(request.id);
      if (!response) {
        finish();
        options.turn?.release();
        options.abandoned?.();
        return;
      }
      this.options.state.durations[response.error ? 'error' : 'ok'].observe((performance.now() - started) / 1000);
      finish();
      if (response.error) options.turn?.release();
      if (!options.transform && !options.after) {
        this.emit(
          response.error ? { jsonrpc: '2.0', id: request.id, error: response.error } : ok(request.id, response.result),
        );
        return;
      }
      this.emit(this.reply(request, response, options));
    });
    if (upstreamId !== undefined) {
      this.inFlight.set(request.id, { upstream, id: upstreamId });
      this.throttleClientIfUpstreamFull();
    }
  }

  /** Queues a message to the client, after anything earlier that is still being prepared. */
  emit(out: Outgoing | Promise<Outgoing | undefined>): void {
    if (this.outTail === undefined && !(out instanceof Promise)) {
      this.write(out);
      return;
    }
    // Something earlier is still being prepared (a filtered list): keep the order.
    const tail = (this.outTail ?? Promise.resolve())
      .then(() => out)
      .then(
        (o) => {
          if (o !== undefined) this.write(o);
        },
        (error: unknown) => this.log.error({ err: errorText(error) }, 'lost a message to a Copilot client'),
      );
    this.outTail = tail;
    void tail.finally(() => {
      if (this.outTail === tail) this.outTail = undefined;
    });
  }

  throttleClientIfUpstreamFull(): void {
    if (this.upstream?.socket.writableNeedDrain) this.peer.socket.pause();
  }

  /** Answers the connection once with `error` (id null), not counted as a request rejection, and closes it. */
  refuseAndClose(error: AgentError): void {
    this.phase = 'closing';
    this.peer.sendAndEnd({
      jsonrpc: '2.0',
      id: null,
      error: error.toJsonRpcError(this.options.context.policy.expiredSessionStatus),
    });
    this.upstream?.destroy();
  }

  errorMessage(id: JsonRpcId | null, error: AgentError): object {
    this.options.context.metrics.rejections.inc({ code: error.code });
    return {
      jsonrpc: '2.0',
      id,
      error: error.toJsonRpcError(this.options.context.policy.expiredSessionStatus),
    };
  }

  reject(id: JsonRpcId, error: AgentError): void {
    this.emit(this.errorMessage(id, error));
  }

  rejectAndClose(id: JsonRpcId, error: AgentError): void {
    this.phase = 'closing';
    const message = this.errorMessage(id, error);
    if (this.spans.size > 0) this.endSpan(message);
    this.peer.sendAndEnd(message);
    this.upstream?.destroy();
  }

  internalError(request: JsonRpcRequest, error: unknown): void {
    this.log.error({ method: request.method, err: errorText(error) }, 'internal error handling a Copilot request');
    this.emit({ jsonrpc: '2.0', id: request.id, error: { code: -32603, message: 'internal error in the agent' } });
  }

  private async reply(request: JsonRpcRequest, response: JsonRpcResponse, options: ForwardOptions): Promise<object> {
    try {
      await options.after?.(response);
      if (response.error) return { jsonrpc: '2.0', id: request.id, error: response.error };
      const result = options.transform ? await options.transform(response.result) : response.result;
      return ok(request.id, result);
    } catch (error) {
      // Never fall back to the unfiltered answer.
      this.log.warn({ method: request.method, err: errorText(error) }, 'could not finish a Copilot response');
      return this.errorMessage(
        request.id,
        new AgentError('UPSTREAM_UNAVAILABLE', `the agent could not complete ${request.method}`),
      );
    }
  }

  /** Ends the spans of calls the connection closed on before they were answered. */
  abandonSpans(): void {
    for (const span of this.spans.values()) span.end({ 'sessionfleet.outcome': 'aborted' });
    this.spans.clear();
  }

  /**
   * A span for a client request (tracing on): ended when its answer is written. It continues the
   * forwarding agent's span on a hop (its envelope), else the trace the client's params name.
   */
  traceCall(request: JsonRpcRequest): void {
    const tracing = this.options.context.tracing;
    if (!tracing) return;
    this.spans.get(request.id)?.end({ 'sessionfleet.outcome': 'superseded' });
    const fromHop =
      this.hopFrom === undefined
        ? undefined
        : traceCarrierOf((request as JsonRpcRequest & { sessionfleet?: unknown }).sessionfleet);
    const parent = fromHop ?? traceCarrierOf(request.params);
    this.spans.set(
      request.id,
      tracing.startCall(
        request.method,
        {
          'rpc.system': 'jsonrpc',
          'rpc.method': request.method,
          'sessionfleet.front': 'copilot',
          'sessionfleet.instance': this.options.context.config.instanceId,
          'sessionfleet.connection': this.connectionId,
          'sessionfleet.hop': this.hopFrom !== undefined,
          ...(parent ? { 'sessionfleet.trace_parent': fromHop ? 'hop' : 'params' } : {}),
        },
        parent,
      ),
    );
  }

  /**
   * The params of the agent's own `session.resume` of a session (re-homing it, holding it on a
   * hop): the client's last create/resume (model, provider, tools) without the trace context it
   * carried then — that span is long over — and with `trace` if given: the span of the call that
   * caused the resume (ADR 0026).
   */
  replayParams(sessionId: string, trace: TraceCarrier | undefined): Record<string, unknown> {
    const stored = withoutTraceContext(this.loadParams.get(sessionId) ?? { sessionId });
    return trace ? withTraceContext(stored, trace) : stored;
  }

  /** The trace context of a call's span (tracing on): what a hop to the owner agent carries. */
  spanContext(id: JsonRpcId): TraceCarrier | undefined {
    return this.spans.size > 0 ? this.spans.get(id)?.context : undefined;
  }

  private endSpan(out: { id?: unknown; error?: { code?: unknown; data?: { code?: unknown } } }): void {
    const span = this.spans.get(out.id as JsonRpcId);
    if (!span) return;
    this.spans.delete(out.id as JsonRpcId);
    const principal = this.principal;
    const error = out.error;
    span.end(
      {
        'sessionfleet.outcome': error ? 'error' : 'ok',
        ...(principal ? { 'enduser.id': hashedPrincipal(principal) } : {}),
      },
      error ? String(error.data?.code ?? error.code) : undefined,
    );
  }

  private write(out: Outgoing): void {
    if (this.spans.size > 0 && !Buffer.isBuffer(out) && !('method' in out)) this.endSpan(out);
    if (Buffer.isBuffer(out)) this.peer.sendBody(out);
    else this.peer.send(out);
    // A client that does not read must not make the agent buffer output for it without bound.
    if (this.peer.socket.writableNeedDrain) this.updateFlow();
  }
}

export function ok(id: JsonRpcId, result: unknown): object {
  return { jsonrpc: '2.0', id, result: result ?? null };
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
