/**
 * What every front (HTTP, Copilot) is handed by the server: the validated policy, the local
 * session table, the instance's concurrency, logging and metrics. The fronts own their protocol;
 * everything a rule needs to be written once lives here.
 */
import type { Policy } from '../../policy/index.js';
import type { AgentConfig } from './config.js';
import type { JwtVerifier } from './jwt.js';
import type { InstanceLoad } from './load.js';
import type { Logger } from './logger.js';
import type { AgentMetrics } from './metrics.js';
import type { Principals } from './principals.js';
import type { ProbeCheck } from './probe.js';
import type { EndReason, Session, SessionTable } from './sessions.js';
import type { Tracing } from './tracing.js';
import type { UpstreamHealth } from './upstream-health.js';

export interface AgentContext {
  readonly config: AgentConfig;
  readonly policy: Policy;
  readonly logger: Logger;
  readonly metrics: AgentMetrics;
  readonly sessions: SessionTable;
  readonly load: InstanceLoad;
  /** The upstream probe's verdict (absent in tests that run no probe: up). */
  readonly upstreamHealth?: UpstreamHealth;
  /** Token → principal, when `--principals` is given. */
  readonly principals: Principals | undefined;
  /** JWT mode (`--jwt-issuer`): verifies bearer tokens for both fronts. */
  readonly jwt?: JwtVerifier | undefined;
  /** Registers a listener for every session that ends (expiry, delete, eviction, drain...). */
  onSessionEnd(listener: (session: Session, reason: EndReason) => void): void;
  /** True while the agent drains: no new sessions, in-flight work finishes. */
  readonly draining: boolean;
  /** Traces, when the `OTEL_*` environment turns them on (`tracing.ts`); undefined otherwise. */
  readonly tracing?: Tracing;
  // `coordinator` is declared by agent/fleet/types.ts, which adds it to this interface: core sits
  // below the fleet layer and must not import it.
}

export interface ListenAddress {
  host: string;
  port: number;
}

/** How a task kill ended on the instance that holds the task. */
export type TaskCancelOutcome =
  /** `tasks/cancel` acknowledged by the server; `status` is what the task says now. */
  | { outcome: 'cancelled'; status?: string }
  /** The task had already reached a terminal status (completed, failed, cancelled): nothing to do. */
  | { outcome: 'finished'; status: string }
  /** The server does not know it (expired, or gone with a restart). */
  | { outcome: 'unknown' }
  /** The server did not answer as expected. */
  | { outcome: 'failed'; reason: string };

export interface StreamFilter {
  principal?: string;
  tenant?: string;
}

/** One open stream (an MCP 2026 `subscriptions/listen`, a GET event stream), for the admin API. */
export interface StreamInfo {
  /** Minted by the agent that holds it; unique in the fleet. */
  id: string;
  kind: 'listen' | 'get';
  instanceId: string;
  principal: string | null;
  tenant: string | null;
  sessionId: string | null;
  openedAt: string;
  idleSeconds: number;
}

/**
 * What the upstream says of a session this instance held before the agent restarted (ADR 0022):
 * `held` (it still holds it, or the session is the agent's own binding and needs no upstream),
 * `gone` (the upstream does not know it), `unanswered` (no usable answer: it may hold it or not).
 */
export type UpstreamSessionVerdict = 'held' | 'gone' | 'unanswered';

/** A session the fleet registry gives this instance at start, as a front needs it to ask its upstream. */
export interface EarlierSession {
  readonly id: string;
  /** Where it lives upstream (the MCP endpoint path), when the registry recorded it. */
  readonly path: string | undefined;
}

/** A client-facing front: the HTTP proxy or the Copilot JSON-RPC proxy. */
export interface Front {
  readonly kind: 'http' | 'copilot';
  /** Starts listening on `config.listen`; resolves with the bound address. */
  listen(): Promise<ListenAddress>;
  /** The upstream check the probe runs; the server falls back to TCP connect / HTTP GET. */
  probeCheck?(): ProbeCheck | undefined;
  /**
   * The reconcile after a restart (ADR 0022): asks the upstream, without side effects, whether it
   * still holds a session of this instance's earlier life. Absent: the front's sessions do not
   * outlive the agent's connections to its upstream, and the registry's resync releases them.
   */
  checkEarlierSession?(session: EarlierSession, signal: AbortSignal): Promise<UpstreamSessionVerdict>;
  /** Ends upstream (best effort) a session of the earlier life that the reconcile ended. */
  endEarlierSession?(session: EarlierSession): Promise<void>;
  /** Ends one session properly (upstream delete or detach) and frees its slot. */
  terminate?(sessionId: string): Promise<boolean>;
  /**
   * The kill switch for MCP 2026 tasks: sends `tasks/cancel` upstream for the live tasks this
   * instance holds for `principal` (in `tenant`, if given).
   */
  cancelTasks?(filter: { principal: string; tenant?: string }): Promise<{ cancelled: string[]; failed: string[] }>;
  /**
   * The fleet-wide task kill switch's part here (ADR 0025): cancels one task this instance holds
   * upstream, saying whether it was live, finished already, or unknown to the server.
   */
  cancelTask?(taskId: string): Promise<TaskCancelOutcome>;
  /** The open streams this front holds (listen and GET event streams), filtered. */
  listStreams?(filter: StreamFilter): StreamInfo[];
  /** Closes the streams that match (one by `id`, or a principal's): each ends cleanly for its client. */
  closeStreams?(filter: StreamFilter & { id?: string }): StreamInfo[];
  /**
   * Stops taking new sessions and connections' new work, and resolves once nothing is in flight.
   * The server bounds the wait by `policy.drainTimeoutSeconds`.
   */
  drain(): Promise<void>;
  /** Closes every connection and the listener. */
  close(): Promise<void>;
  /** Open streams held now (MCP 2026 listens, SSE GETs): `sessionfleet_open_streams`. */
  openStreams?(): number;
  /** What each principal and tenant holds now under `policy.limits` (the admin usage inventory). */
  usage?(): ReadonlyArray<{
    principal: string | undefined;
    tenant: string | undefined;
    requests: number;
    streams: number;
    tasks: number;
  }>;
}
