/**
 * One Copilot client (one `CopilotClient` of `@github/copilot-sdk`) and its own upstream
 * connection to the CLI: the connection's phase, the queue of requests pipelined behind its
 * `connect`, and the dispatch of each request to the part that serves it.
 *
 * - `connect`: the agent checks the client's token (`params.token`, the SDK's `connectionToken`)
 *   against the principals, and only then opens the upstream connection and forwards the
 *   client's `connect` with the token replaced by the agent's own (`--upstream-token`), so the
 *   SDK gets the CLI's real answer (protocol version, task kinds). Nothing reaches the CLI before.
 * - Requests: routed by `methods.ts`; session methods go to `session-requests.ts` (owner, state on
 *   this instance, quotas), the others to the CLI under an upstream id of the agent's (see
 *   `upstream.ts`), their answers filtered to the caller's sessions (`cli-events.ts`).
 * - From the CLI: see `cli-events.ts`; from other agents of the fleet: see `remote.ts`.
 */
import type { Socket } from 'node:net';
import { AgentError } from '../core/errors.js';
import { looksLikeJwt } from '../core/jwt.js';
import type { Identity } from '../core/principals.js';
import { type Caller, tenantOf, tenantRefusal } from '../core/tenancy.js';
import { markFromObject } from '../routing/index.js';
import { SessionAccess } from './access.js';
import { ANONYMOUS_PRINCIPAL, type ChannelOptions, ClientChannel, errorText, ok } from './channel.js';
import { CliEvents } from './cli-events.js';
import { CLI_AUTH_FAILED, CLI_AUTH_REQUIRED } from './control.js';
import { HOP_PARAM } from './hop.js';
import {
  type JsonRpcId,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
  paramsOf,
} from './jsonrpc.js';
import { routeRequest } from './methods.js';
import type { ProtocolProblem, ValidMessage } from './peer.js';
import { RemoteHops } from './remote.js';
import { SessionRequests } from './session-requests.js';
import { SessionRouting } from './session-routing.js';
import type { Slot } from './state.js';
import { Upstream } from './upstream.js';

export { ANONYMOUS_PRINCIPAL } from './channel.js';

export interface ConnectionOptions extends ChannelOptions {
  onClosed(connection: ClientConnection): void;
}

/** Requests a client may pipeline behind its `connect` before the answer (and their bytes: one handshake frame). */
const MAX_QUEUED_BEFORE_CONNECT = 64;

export class ClientConnection {
  private readonly c: ClientChannel;
  private readonly events: CliEvents;
  private readonly remote: RemoteHops;
  private readonly sessions: SessionRequests;
  private queued: JsonRpcRequest[] = [];
  private queuedBytes = 0;
  /** Until `connect` succeeds: closes the connection at the handshake timeout. */
  private handshakeTimer: NodeJS.Timeout | undefined;
  private upstreamGone = false;
  /** The agent is closing this connection (shutdown): the upstream closing is expected. */
  private closing = false;
  private readonly closedPromise: Promise<void>;

  constructor(
    socket: Socket,
    private readonly options: ConnectionOptions,
  ) {
    let closed: () => void = () => {};
    this.closedPromise = new Promise((resolve) => {
      closed = resolve;
    });
    this.c = new ClientChannel(socket, options, {
      onMessage: (message, body) => this.onClientMessage(message, body),
      onProblem: (problem) => this.onClientProblem(problem),
      onClose: () => {
        this.onClientClose();
        closed();
      },
    });
    this.events = new CliEvents(this.c);
    this.remote = new RemoteHops(this.c);
    const access = new SessionAccess(this.c);
    this.sessions = new SessionRequests(this.c, access, new SessionRouting(this.c, access, this.remote));
    options.gate.enter(this);
    this.handshakeTimer = setTimeout(() => this.onHandshakeTimeout(), options.gate.limits.handshakeTimeoutMs);
    this.handshakeTimer.unref();
    this.c.log.debug({ remote: `${socket.remoteAddress}:${socket.remotePort}` }, 'Copilot client connected');
  }

  get connectionId(): number {
    return this.c.connectionId;
  }

  get principal(): string | undefined {
    return this.c.principal;
  }

  /** Bytes held for this client now (a partial frame, output not yet sent). */
  get bufferedBytes(): number {
    return this.c.peer.bufferedBytes;
  }

  /** Resolves once the client's socket has closed. */
  get closed(): Promise<void> {
    return this.closedPromise;
  }

  /** Ends both connections (the CLI unloads what only this connection held, saving its state). */
  close(): void {
    this.closing = true;
    this.c.peer.end();
    this.c.upstream?.close();
    this.remote.close();
    setTimeout(() => this.c.peer.destroy(), 2000).unref();
  }

  // ---- from the client -------------------------------------------------------------------

  private onClientMessage(message: ValidMessage, body: Buffer): void {
    if (this.c.phase === 'closing' || this.c.phase === 'closed') return;
    if (message.kind === 'request') this.onRequest(message.message, body.length);
    else if (message.kind === 'response') this.onClientResponse(message.message, body);
    else this.onClientNotification(message.message);
  }

  private onRequest(request: JsonRpcRequest, bytes: number): void {
    this.c.traceCall(request);
    if (request.method === 'connect') {
      void this.onConnect(request).catch((error: unknown) => this.c.internalError(request, error));
      return;
    }
    if (this.c.phase === 'connecting') {
      const limit = this.options.gate.limits.handshakeFrameBytes;
      if (this.queued.length >= MAX_QUEUED_BEFORE_CONNECT || this.queuedBytes + bytes > limit) {
        this.c.reject(
          request.id,
          new AgentError(
            'BAD_REQUEST',
            `too many requests sent before connect was answered (at most ${MAX_QUEUED_BEFORE_CONNECT}, ${limit} bytes)`,
          ),
        );
      } else {
        this.queued.push(request);
        this.queuedBytes += bytes;
      }
      return;
    }
    if (this.c.phase !== 'ready') {
      this.c.reject(
        request.id,
        new AgentError('UNAUTHENTICATED', `${JSON.stringify(request.method)} before connect: send connect first`),
      );
      return;
    }
    this.dispatch(request);
  }

  private dispatch(request: JsonRpcRequest): void {
    const params = paramsOf(request);
    const route = routeRequest(request.method, params, this.options.methods);
    if (route.kind === 'refused') {
      this.c.reject(request.id, route.error);
      return;
    }
    if (route.kind === 'connect') return;
    const taken = this.takeSlot();
    if (taken instanceof AgentError) {
      this.c.reject(request.id, taken);
      return;
    }
    const slot = taken;
    switch (route.kind) {
      case 'global':
        this.c.forward(request, slot);
        return;
      case 'session-list':
        this.c.forward(request, slot, {
          transform: (result) => this.events.filterList(result, paramsOf(request).filter),
        });
        return;
      case 'session-pointer':
        this.c.forward(request, slot, { transform: (result) => this.events.filterPointer(result) });
        return;
      case 'session':
        this.sessions.handle(request, route.sessionId, route.action, slot);
        return;
    }
  }

  /**
   * A unit of the instance's concurrency and, under `policy.limits`, of the caller's request
   * budget (all or nothing), released together — for a `session.send`, when its turn ends. A call
   * forwarded to the owner agent gives its budget back here (`releaseBudget`): the owner's hop
   * connection, authenticated as the same client, counts it there until it (or its turn) ends.
   */
  private takeSlot(): Slot | AgentError {
    const { state, context, budgets } = this.options;
    const slot = state.acquireSlot();
    if (!slot) {
      const limit = context.load.limit;
      return new AgentError(
        'CONCURRENCY_LIMIT_REACHED',
        `this instance already serves its limit of ${limit} requests`,
        {
          details: { limit },
        },
      );
    }
    const caller = this.budgetCaller();
    if (!caller) return slot;
    const refused = budgets.acquire('requests', caller);
    if (refused) {
      slot.release();
      return refused;
    }
    let budgeted = true;
    const releaseBudget = () => {
      if (!budgeted) return;
      budgeted = false;
      budgets.release('requests', caller);
    };
    return {
      release: () => {
        releaseBudget();
        slot.release();
      },
      releaseBudget,
    };
  }

  /**
   * Who the budgets count: the connection's principal and tenant. Without `--principals` (and
   * JWT) every client is the same anonymous placeholder, which is nobody's budget — as an HTTP
   * request without a principal header — while the tenant (`--tenant`) still counts.
   */
  private budgetCaller(): Caller | undefined {
    const { principals, jwt } = this.options.context;
    const principal = principals || jwt ? this.c.principalName : undefined;
    if (principal === undefined && this.c.tenant === undefined) return undefined;
    return { principal, tenant: this.c.tenant };
  }

  private onClientResponse(response: JsonRpcResponse, body: Buffer): void {
    // The answer to a request another instance's CLI sent through a hop: back under its own id.
    if (this.remote.answer(response)) return;
    // Only answers to requests the CLI sent on this connection pass.
    this.events.answer(response, body);
  }

  private onClientNotification(notification: JsonRpcNotification): void {
    if (notification.method !== '$/cancelRequest' || !this.c.upstream) return;
    const id = paramsOf(notification).id;
    const target = id === undefined ? undefined : this.c.inFlight.get(id as JsonRpcId);
    if (target !== undefined) {
      target.upstream.send({ jsonrpc: '2.0', method: '$/cancelRequest', params: { id: target.id } });
    }
  }

  /**
   * Who a `connect` token names: an entry of `--principals`, else (JWT mode) the caller a
   * verified bearer JWT names, else nobody. Without either, every client is anonymous.
   */
  private identify(token: unknown): Identity | AgentError | undefined | Promise<Identity | AgentError> {
    const { principals, jwt } = this.c.options.context;
    if (!principals && !jwt) return { principal: ANONYMOUS_PRINCIPAL, tenant: undefined };
    const listed = principals?.identify(token);
    if (listed || !jwt || typeof token !== 'string' || !looksLikeJwt(token)) return listed;
    const named = (caller: Caller | AgentError): Identity | AgentError =>
      caller instanceof AgentError ? caller : { principal: caller.principal ?? '', tenant: caller.tenant };
    const hit = jwt.cached(token);
    return hit ? named(hit) : jwt.verify(token).then(named);
  }

  private async onConnect(request: JsonRpcRequest): Promise<void> {
    const { context, upstream: target } = this.c.options;
    const params = paramsOf(request);
    const wasNew = this.c.phase === 'new';
    if (!wasNew && this.c.phase === 'connecting' && this.c.principalName === undefined) {
      this.c.reject(request.id, new AgentError('BAD_REQUEST', 'connect is already in progress'));
      return;
    }
    // Requests pipelined behind this connect wait in the queue while its token is checked.
    if (wasNew) this.c.phase = 'connecting';
    const found = this.identify(params.token);
    const identity = found instanceof Promise ? await found : found;
    if (identity instanceof AgentError) {
      this.c.log.warn(
        { remote: this.c.peer.socket.remoteAddress, code: identity.code, reason: identity.details.reason },
        'refused a Copilot client: its connect token did not verify',
      );
      this.c.rejectAndClose(request.id, identity);
      return;
    }
    if (identity === undefined) {
      const reason = params.token === undefined ? 'no token' : 'an unknown token';
      this.c.log.warn(
        { remote: this.c.peer.socket.remoteAddress },
        `refused a Copilot client: connect carried ${reason}`,
      );
      this.c.rejectAndClose(
        request.id,
        new AgentError('UNAUTHENTICATED', `connect carried ${reason} (the SDK sends its connectionToken)`),
      );
      return;
    }
    const principal = identity.principal;
    const tenant = tenantOf(identity.tenant, context.config);
    const forbidden = tenantRefusal(context.policy, context.config, { principal, tenant });
    if (forbidden) {
      this.c.log.warn({ principal, tenant }, 'refused a Copilot client of another tenant');
      this.c.rejectAndClose(request.id, forbidden);
      return;
    }
    if (wasNew && params[HOP_PARAM] !== undefined) {
      // Only another agent of the fleet can sign the mark; a client that sends one is refused.
      const mark = this.options.router.acceptMark(markFromObject(params[HOP_PARAM]));
      if (!mark.ok) {
        this.c.log.warn(
          { remote: this.c.peer.socket.remoteAddress, reason: mark.reason },
          'refused an agent-to-agent hop',
        );
        this.c.rejectAndClose(
          request.id,
          new AgentError('UNAUTHENTICATED', `connect carried an invalid ${mark.reason}`),
        );
        return;
      }
      this.c.hopFrom = mark.mark.from;
    }
    if (!wasNew) {
      if (principal !== this.c.principal || tenant !== this.c.tenant) {
        this.c.rejectAndClose(request.id, new AgentError('UNAUTHENTICATED', 'a connection cannot change its user'));
      } else if (this.c.phase === 'connecting') {
        this.c.reject(request.id, new AgentError('BAD_REQUEST', 'connect is already in progress'));
      } else {
        this.forwardConnect(request, params);
      }
      return;
    }
    this.c.phase = 'connecting';
    this.c.principalName = principal;
    this.c.tenant = tenant;
    this.c.clientToken = params.token;
    try {
      this.c.upstream = await Upstream.open(
        target.host,
        target.port,
        {
          onRequest: (req, body) => this.events.onRequest(req, body),
          onNotification: (note, body) => this.events.onNotification(note, body),
          onProblem: (problem) => this.events.onProblem(problem),
          onClose: () => this.onUpstreamClose(),
        },
        { ...this.c.options.frame, signal: AbortSignal.timeout(10_000) },
      );
    } catch (error) {
      this.c.log.warn({ err: errorText(error) }, 'cannot reach the Copilot CLI for a new client');
      this.c.rejectAndClose(
        request.id,
        new AgentError('UPSTREAM_UNAVAILABLE', 'the agent cannot reach the Copilot CLI'),
      );
      return;
    }
    if (this.c.phase !== 'connecting') {
      this.c.upstream.destroy();
      return;
    }
    this.c.upstream.socket.on('drain', () => this.c.updateFlow());
    this.forwardConnect(request, params);
  }

  /** Forwards the client's `connect` with the agent's token in place of the client's. */
  private forwardConnect(request: JsonRpcRequest, params: Record<string, unknown>): void {
    const { token } = this.c.options.upstream;
    const { token: _clientToken, [HOP_PARAM]: _hop, ...rest } = params;
    const rewritten = token === undefined ? rest : { ...rest, token };
    this.c.upstream!.forward('connect', rewritten, (response) => {
      if (!response || this.c.phase === 'closing' || this.c.phase === 'closed') return;
      const code = response.error?.code;
      if (code === CLI_AUTH_REQUIRED || code === CLI_AUTH_FAILED) {
        this.c.log.error(
          { cliCode: code },
          "the Copilot CLI refused the agent's token: set --upstream-token to the CLI's COPILOT_CONNECTION_TOKEN",
        );
        this.c.rejectAndClose(
          request.id,
          new AgentError('UPSTREAM_UNAVAILABLE', 'the agent could not authenticate to the Copilot CLI'),
        );
        return;
      }
      const first = this.c.phase === 'connecting';
      this.c.phase = 'ready';
      this.c.emit(
        response.error ? { jsonrpc: '2.0', id: request.id, error: response.error } : ok(request.id, response.result),
      );
      if (first) {
        this.endHandshake();
        this.c.authenticated();
        this.c.log.info({ principal: this.c.principal }, 'Copilot client authenticated');
        const queued = this.queued;
        this.queued = [];
        this.queuedBytes = 0;
        for (const next of queued) this.dispatch(next);
      }
    });
  }

  private onUpstreamClose(): void {
    this.upstreamGone = true;
    if (this.c.phase === 'closed' || this.closing) return;
    this.c.log.warn('the Copilot CLI closed the connection: closing the client connection');
    this.c.peer.end();
    setTimeout(() => this.c.peer.destroy(), 2000).unref();
  }

  // ---- the client's side -----------------------------------------------------------------

  /** The connection is no stranger any more (or is gone): its timer and its place among the strangers go. */
  private endHandshake(): void {
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    this.options.gate.leave(this);
  }

  private onHandshakeTimeout(): void {
    this.handshakeTimer = undefined;
    if (this.c.phase === 'ready' || this.c.phase === 'closing' || this.c.phase === 'closed') return;
    const timeoutMs = this.options.gate.limits.handshakeTimeoutMs;
    this.options.gate.refusals.refuse(
      'handshake-timeout',
      { remote: this.c.peer.socket.remoteAddress, phase: this.c.phase, timeoutMs },
      'closing a Copilot client connection: no successful connect in time',
    );
    this.c.refuseAndClose(
      new AgentError('HANDSHAKE_TIMEOUT', `no successful connect within ${timeoutMs} ms of opening the connection`, {
        details: { timeoutMs },
      }),
    );
  }

  private onClientProblem(problem: ProtocolProblem): void {
    if (problem.fatal) {
      const fields = {
        principal: this.principal,
        remote: this.c.peer.socket.remoteAddress,
        phase: this.c.phase,
        reason: problem.reason,
      };
      if (problem.framing === 'frame-too-large' || problem.framing === 'header-too-large') {
        const limit = this.c.peer.frameLimit;
        this.options.gate.refusals.refuse(
          'frame-too-large',
          { ...fields, limit },
          'closing a Copilot client connection: frame too large',
        );
        // The answer is best effort: a client still sending may never read it.
        this.c.refuseAndClose(
          new AgentError(
            'PAYLOAD_TOO_LARGE',
            `${problem.reason} (${this.c.phase === 'ready' ? 'after' : 'before'} connect)`,
            {
              details: { limit },
            },
          ),
        );
        return;
      }
      this.options.gate.refusals.refuse(
        'malformed-frame',
        fields,
        'closing a Copilot client connection: malformed frame',
      );
      this.c.peer.destroy();
      return;
    }
    this.c.emit({ jsonrpc: '2.0', id: null, error: { code: -32600, message: `Invalid Request: ${problem.reason}` } });
  }

  private onClientClose(): void {
    this.endHandshake();
    if (this.c.phase === 'closed') return;
    this.c.phase = 'closed';
    this.c.clientGone.abort(new Error('the Copilot client closed its connection'));
    this.c.abandonSpans();
    const reason = this.upstreamGone ? 'upstream-closed' : 'detached';
    for (const sessionId of [...this.c.held]) this.options.state.letGo(sessionId, this.c, reason);
    this.c.held.clear();
    this.queued = [];
    this.queuedBytes = 0;
    this.remote.close();
    // Closing the upstream makes the CLI save and unload what only this connection held; its
    // unanswered requests give their slots back.
    this.c.upstream?.close();
    this.c.log.debug({ principal: this.principal }, 'Copilot client disconnected');
    this.options.onClosed(this);
  }
}
