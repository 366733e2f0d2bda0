/**
 * Refusals for a connection or request limit (ADR 0017): each is counted in
 * `sessionfleet_connections_refused_total{front, reason}` and logged once, as one warn line. A
 * flood (hundreds of refusals a second) must not become a flood of log lines: after a line for a
 * reason, further refusals for it within `quietMs` are only counted, and the next line says how
 * many were left out. Callers pass addresses and limits, never tokens or payloads.
 */
import type { Logger } from './logger.js';
import type { AgentMetrics } from './metrics.js';

export type RefusalReason =
  /** Copilot: no successful `connect` within the handshake timeout. */
  | 'handshake-timeout'
  /** Copilot: too many connections waiting for their `connect`. */
  | 'unauthenticated-limit'
  /** Copilot: a frame (or its header block) above the limit of the connection's phase. */
  | 'frame-too-large'
  /** Copilot: a stream that is not Content-Length framed JSON. */
  | 'malformed-frame'
  /** HTTP: the header block did not arrive within the headers timeout. */
  | 'headers-timeout'
  /** HTTP: the body did not arrive within the request timeout. */
  | 'request-timeout'
  | 'headers-too-large'
  | 'body-too-large'
  /** HTTP: a body that stalled or fell behind `--http-body-min-bytes-per-second` (ADR 0023). */
  | 'body-too-slow'
  /** HTTP: dropped at accept, `--http-max-connections` open already. */
  | 'connection-limit'
  /** HTTP: a `CONNECT` request. */
  | 'connect-method'
  /** HTTP: a request node:http could not parse. */
  | 'bad-request';

export class Refusals {
  private readonly lastLogged = new Map<RefusalReason, number>();
  private readonly leftOut = new Map<RefusalReason, number>();

  constructor(
    private readonly front: 'copilot' | 'http',
    private readonly metrics: AgentMetrics,
    private readonly logger: Logger,
    private readonly quietMs = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  refuse(reason: RefusalReason, fields: Record<string, unknown>, message: string): void {
    this.metrics.connectionsRefused.inc({ front: this.front, reason });
    const now = this.now();
    const last = this.lastLogged.get(reason);
    if (last !== undefined && now - last < this.quietMs) {
      this.leftOut.set(reason, (this.leftOut.get(reason) ?? 0) + 1);
      return;
    }
    const skipped = this.leftOut.get(reason) ?? 0;
    this.lastLogged.set(reason, now);
    this.leftOut.delete(reason);
    this.logger.warn(
      { ...fields, refusal: reason, ...(skipped > 0 ? { alsoRefusedWithoutLog: skipped } : {}) },
      message,
    );
  }
}
