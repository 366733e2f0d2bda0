/**
 * Agent-to-agent hops of the Copilot front (`--redis`). A client connection whose sessions live
 * on several instances reaches each other instance through one hop: a TCP connection to that
 * agent's client port, speaking the CLI protocol like any client. The hop authenticates with the
 * client's own token (the owner agent applies the same principal and the same checks) plus a
 * mark, signed with the fleet key, that says "already placed and routed by instance X": the owner
 * then never forwards the connection's requests again and honours the reservation a forwarded
 * `session.create` carries. A client cannot forge the mark without the fleet key; a mark is bound
 * to both instances and expires after `HOP_MARK_MAX_AGE_MS`.
 */
import { AgentError } from '../core/errors.js';
import { type AgentMark, markToObject } from '../routing/mark.js';
import { JsonRpcError, type JsonRpcErrorObject } from './jsonrpc.js';
import { Upstream, type UpstreamHandlers } from './upstream.js';

/** The `connect` param that carries the mark (stripped before the CLI sees `connect`). */
export const HOP_PARAM = 'sessionfleet';
// The mark codec is the routing core's, shared with the HTTP front.
export { HOP_MARK_MAX_AGE_MS, type HopMark, signHopMark, verifyHopMark } from '../routing/mark.js';

/** What a forwarded request carries beside its params (the request's `sessionfleet` member). */
export interface HopEnvelope {
  /** The slot reserved by the forwarding agent's `place()`, for a new (or re-placed) session. */
  reservation?: string;
  /** Tracing on: the forwarding agent's span, which the owner's span continues. */
  traceparent?: string;
  tracestate?: string;
}

/**
 * The `data` member of the error with which an agent answers a hop's request for a session it
 * does not hold and the registry does not give it (its value: the answering instance). The
 * forwarding agent reads it only on its hops' answers: it forgets its route and routes once more.
 */
export const NOT_OWNER_DATA = 'notOwner';

/** The answer to a hop's request for a session this instance is not the owner of. */
export function notOwnerError(sessionId: string, self: string): AgentError {
  return new AgentError('SESSION_NOT_FOUND', `session ${JSON.stringify(sessionId)} is not held by instance ${self}`, {
    details: { sessionId, [NOT_OWNER_DATA]: self },
  });
}

/** Whether an error a hop answered is "not the owner". */
export function isNotOwner(error: { data?: unknown } | undefined): boolean {
  const data = error?.data as Record<string, unknown> | undefined;
  return typeof data === 'object' && data !== null && typeof data[NOT_OWNER_DATA] === 'string';
}

/** A hop's error as the client gets it: without the agents' "not the owner" mark. */
export function withoutNotOwner(error: JsonRpcErrorObject): JsonRpcErrorObject {
  if (!isNotOwner(error)) return error;
  const { [NOT_OWNER_DATA]: _self, ...data } = error.data as Record<string, unknown>;
  return { ...error, data };
}

export class Hop {
  /** Sessions this hop has created or resumed on the owner (it receives their events). */
  readonly attached = new Set<string>();

  private constructor(
    readonly instanceId: string,
    readonly upstream: Upstream,
  ) {}

  /** Connects to the owner agent's client port and authenticates as the client, marked as a hop. */
  static async open(
    target: { instanceId: string; advertise: string },
    auth: { token: unknown; mark: AgentMark },
    handlers: UpstreamHandlers,
  ): Promise<Hop> {
    const url = new URL(target.advertise);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || 80);
    const upstream = await Upstream.open(host, port, handlers, { signal: AbortSignal.timeout(5000) });
    try {
      const params: Record<string, unknown> = {
        [HOP_PARAM]: markToObject(auth.mark),
      };
      if (auth.token !== undefined) params.token = auth.token;
      await upstream.call('connect', params, AbortSignal.timeout(5000));
    } catch (error) {
      upstream.destroy();
      throw error instanceof JsonRpcError ? new Error(`the owner agent refused the hop: ${error.message}`) : error;
    }
    return new Hop(target.instanceId, upstream);
  }
}
