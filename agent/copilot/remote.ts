/**
 * The hops of one Copilot client connection to the other agents of the fleet (`--redis`): a
 * session request for a session another instance holds goes over this connection's one hop to
 * that instance's agent (`hop.ts`), and the requests that instance's CLI sends back reach the
 * client under ids of the agent's own.
 */
import { AgentError } from '../core/errors.js';
import type { TraceCarrier } from '../core/trace-context.js';
import type { AgentMark, Decision, Forward, Peer } from '../routing/index.js';
import { type ClientChannel, errorText, ok } from './channel.js';
import { Hop, type HopEnvelope, isNotOwner, withoutNotOwner } from './hop.js';
import {
  JsonRpcError,
  type JsonRpcErrorObject,
  type JsonRpcId,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from './jsonrpc.js';
import type { SessionAction } from './methods.js';
import type { Slot } from './state.js';

/** Called with the router's second decision when the owner answered "not the owner". */
export type Reroute = (next: Promise<Decision>) => void;

export class RemoteHops {
  /** Owner instance → hop to its agent. */
  private readonly hops = new Map<string, Promise<Hop>>();
  /** Ids under which requests of other instances' CLIs were passed to the client → their origin. */
  private readonly hopRequests = new Map<string, { hop: Hop; id: JsonRpcId }>();
  private hopRequestIds = 0;

  constructor(private readonly c: ClientChannel) {}

  /** The client's answer to a request another instance's CLI sent through a hop: back under its own id. */
  answer(response: JsonRpcResponse): boolean {
    const fromHop = typeof response.id === 'string' ? this.hopRequests.get(response.id) : undefined;
    if (!fromHop) return false;
    this.hopRequests.delete(response.id as string);
    fromHop.hop.upstream.send({ ...response, id: fromHop.id });
    return true;
  }

  /**
   * Carries out the router's `forward` decision: sends the session request over this connection's
   * hop to the target agent, with the placement's reservation beside it. A hop that cannot be
   * opened, or closes first, fails the decision (the router forgets the route or gives the
   * placement back); a "not the owner" answer hands the router's one retry to `reroute` instead
   * of answering the client.
   */
  async forward(
    request: JsonRpcRequest,
    sessionId: string,
    action: SessionAction,
    slot: Slot,
    decision: Forward,
    reroute: Reroute,
  ): Promise<void> {
    const target = decision.to;
    const retry = decision.retry;
    let hop: Hop;
    try {
      hop = await this.hopTo(target, decision.mark);
    } catch (error) {
      decision.failed();
      this.c.log.warn(
        { sessionId, instance: target.instanceId, err: errorText(error) },
        'cannot reach the owner agent',
      );
      throw new AgentError('UPSTREAM_UNAVAILABLE', `the agent cannot reach instance ${target.instanceId}`, {
        retryAfterSeconds: 1,
        details: { sessionId, instanceId: target.instanceId },
      });
    }
    if (action !== 'create' && action !== 'resume' && action !== 'delete' && !hop.attached.has(sessionId)) {
      // The owner's CLI sends a session's events only to connections holding it: hold it on the hop.
      // The owner's span continues this request's (the envelope), never the stored params' trace.
      try {
        await hop.upstream.call(
          'session.resume',
          this.c.replayParams(sessionId, undefined),
          AbortSignal.timeout(30_000),
          envelopeOf(undefined, this.c.spanContext(request.id)),
        );
        hop.attached.add(sessionId);
      } catch (error) {
        const notOwner = error instanceof JsonRpcError && isNotOwner(error);
        if (notOwner && retry) {
          reroute(retry());
          return;
        }
        if (notOwner || !(error instanceof JsonRpcError)) decision.failed();
        slot.release();
        this.c.emit(this.relayedError(request.id, error));
        return;
      }
    }
    const started = performance.now();
    const upstreamId = hop.upstream.forward(
      request.method,
      request.params,
      (response) => {
        this.c.inFlight.delete(request.id);
        if (response?.error && isNotOwner(response.error)) {
          hop.attached.delete(sessionId);
          if (retry) {
            // The owner's agent does not hold it and the registry does not give it to it: the
            // route was stale. The router decides once more (never forwarded twice).
            reroute(retry());
            return;
          }
          decision.failed();
        }
        slot.release();
        if (!response) {
          decision.failed();
          this.c.reject(
            request.id,
            new AgentError('UPSTREAM_UNAVAILABLE', `the connection to instance ${target.instanceId} closed`, {
              retryAfterSeconds: 1,
              details: { sessionId, instanceId: target.instanceId },
            }),
          );
          return;
        }
        this.c.options.state.durations[response.error ? 'error' : 'ok'].observe((performance.now() - started) / 1000);
        if (response.error) {
          if ((response.error.data as { code?: unknown } | undefined)?.code === 'SESSION_NOT_FOUND') decision.failed();
          this.c.emit({ jsonrpc: '2.0', id: request.id, error: withoutNotOwner(response.error) });
          return;
        }
        if (action === 'create' || action === 'resume') {
          hop.attached.add(sessionId);
          this.c.loadParams.set(sessionId, request.params);
        } else if (action === 'delete' || action === 'detach') {
          hop.attached.delete(sessionId);
          if (action === 'delete') this.c.loadParams.delete(sessionId);
        }
        this.c.emit(ok(request.id, response.result));
      },
      envelopeOf(decision.reservationId, this.c.spanContext(request.id)),
    );
    if (upstreamId !== undefined) this.c.inFlight.set(request.id, { upstream: hop.upstream, id: upstreamId });
  }

  private relayedError(id: JsonRpcId, error: unknown): object {
    if (error instanceof JsonRpcError) {
      const relayed: JsonRpcErrorObject = { code: error.code, message: error.message };
      if (error.data !== undefined) relayed.data = error.data;
      return { jsonrpc: '2.0', id, error: withoutNotOwner(relayed) };
    }
    return this.c.errorMessage(id, new AgentError('UPSTREAM_UNAVAILABLE', 'the owner agent did not answer'));
  }

  /** This connection's hop to an instance's agent, opened on first use. */
  private async hopTo(target: Peer, mark: AgentMark): Promise<Hop> {
    const existing = this.hops.get(target.instanceId);
    if (existing) {
      const hop = await existing.catch(() => undefined);
      if (hop && !hop.upstream.isClosed) return hop;
      if (this.hops.get(target.instanceId) === existing) this.hops.delete(target.instanceId);
    }
    let opened: Hop | undefined;
    const attempt = Hop.open(
      target,
      { token: this.c.clientToken, mark },
      {
        onRequest: (req) => {
          if (!opened) return;
          const id = `sessionfleet-hop-${++this.hopRequestIds}`;
          this.hopRequests.set(id, { hop: opened, id: req.id });
          this.c.emit({ ...req, id });
        },
        onNotification: (_note, body) => this.c.emit(body),
        onProblem: (problem) =>
          this.c.log.warn(
            { instance: target.instanceId, reason: problem.reason },
            'hop to another agent: protocol problem',
          ),
        onClose: () => {
          if (this.hops.get(target.instanceId) === attempt) this.hops.delete(target.instanceId);
          // The sessions it held are reached by a fresh route next time.
          for (const id of opened?.attached ?? []) this.c.options.router.forget(id);
          for (const [id, pending] of this.hopRequests) if (pending.hop === opened) this.hopRequests.delete(id);
        },
      },
    ).then((hop) => {
      opened = hop;
      return hop;
    });
    this.hops.set(target.instanceId, attempt);
    attempt.catch(() => {
      if (this.hops.get(target.instanceId) === attempt) this.hops.delete(target.instanceId);
    });
    return attempt;
  }

  close(): void {
    for (const hop of this.hops.values())
      hop.then(
        (h) => h.upstream.close(),
        () => {},
      );
    this.hops.clear();
  }
}

/** What a forwarded request carries beside its params: the reservation, the forwarding span. */
function envelopeOf(
  reservation: string | undefined,
  trace: TraceCarrier | undefined,
): (HopEnvelope & Record<string, unknown>) | undefined {
  if (reservation === undefined && trace === undefined) return undefined;
  return { ...(reservation === undefined ? {} : { reservation }), ...trace };
}
