/**
 * What a Copilot client connection may cost before it authenticates (ADR 0017). Until its
 * `connect` succeeds a connection is a stranger: it may send frames of `handshakeFrameBytes` at
 * most, it has `handshakeTimeoutMs` to get there, and only `maxUnauthenticated` strangers are
 * held at once — one more is answered TOO_MANY_UNAUTHENTICATED and closed at accept, before a
 * byte of it is read. The worst a crowd of strangers can hold is then
 * `maxUnauthenticated` x `handshakeFrameBytes`, whatever it declares or sends.
 */
import type { Socket } from 'node:net';
import { AGENT_LIMIT_DEFAULTS } from '../../policy/agent-interface.js';
import type { ConnectionLimits } from '../core/config.js';
import { AgentError } from '../core/errors.js';
import type { AgentMetrics } from '../core/metrics.js';
import type { Refusals } from '../core/refusals.js';
import { encodeMessage } from './framing.js';

export type CopilotLimits = ConnectionLimits['copilot'];

/** The limits of the configuration, or the defaults for a configuration built without them. */
export function copilotLimits(limits: ConnectionLimits | undefined): CopilotLimits {
  return limits?.copilot ?? AGENT_LIMIT_DEFAULTS.copilot;
}

/** How long a refused socket may take to read its answer before it is destroyed. */
const REFUSED_LINGER_MS = 2000;

export class HandshakeGate {
  private readonly waiting = new Set<object>();

  constructor(
    readonly limits: CopilotLimits,
    private readonly metrics: AgentMetrics,
    readonly refusals: Refusals,
    private readonly expiredSessionStatus: number,
  ) {}

  /** Connections open now that have not completed `connect`. */
  get count(): number {
    return this.waiting.size;
  }

  /** At accept: false when the cap is reached (the socket has been answered and is closing). */
  admit(socket: Socket): boolean {
    if (this.waiting.size < this.limits.maxUnauthenticated) return true;
    const limit = this.limits.maxUnauthenticated;
    this.refusals.refuse(
      'unauthenticated-limit',
      { remote: socket.remoteAddress, limit },
      'refused a Copilot connection: too many connections have not completed connect',
    );
    refuseSocket(
      socket,
      new AgentError('TOO_MANY_UNAUTHENTICATED', `${limit} connections are already waiting for their connect`, {
        retryAfterSeconds: 1,
        details: { limit },
      }),
      this.expiredSessionStatus,
    );
    return false;
  }

  /** A connection is accepted: a stranger until `leave`. */
  enter(connection: object): void {
    this.waiting.add(connection);
    this.metrics.unauthenticatedConnections.set(this.waiting.size);
  }

  /** The connection authenticated or closed (idempotent). */
  leave(connection: object): void {
    if (!this.waiting.delete(connection)) return;
    this.metrics.unauthenticatedConnections.set(this.waiting.size);
  }
}

/** Answers a socket that is not served with one JSON-RPC error (id null) and closes it. */
export function refuseSocket(socket: Socket, error: AgentError, expiredSessionStatus: number): void {
  socket.on('error', () => {});
  socket.end(encodeMessage({ jsonrpc: '2.0', id: null, error: error.toJsonRpcError(expiredSessionStatus) }));
  setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
}
