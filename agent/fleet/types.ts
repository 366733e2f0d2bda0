/**
 * The contract between the fleet layer and the fronts (HTTP, Copilot). Both coordinators
 * implement it: `FleetCoordinator` (with `--redis`) and `LocalCoordinator` (one instance, no
 * network), so a front has one code path whatever the deployment.
 *
 * A front's life with it:
 * - new session: `place()` → local: create it upstream, then `open()`; remote: forward the request
 *   to `advertise` with the reservation id (`FLEET_HEADERS.reservation`), where the owner's front
 *   calls `open()` with it; if the forward fails, `cancel()`;
 * - every later request: `route(id)` → local (no Redis command), remote (forward), adopt (resume
 *   it upstream, then `adopt()`, or `abandon()` if that fails), gone (the policy's expired status);
 * - collaborative writes: `lock.acquire(id)`, pass `lease.token` upstream, `release()` at the end;
 * - ends: nothing to call — the coordinator watches the session table's end events.
 */
import type {
  AgentContext,
  EarlierSession,
  StreamFilter,
  StreamInfo,
  TaskCancelOutcome,
  UpstreamSessionVerdict,
} from '../core/context.js';
import type { Session } from '../core/sessions.js';
import type { AffinityKeyStore } from './affinity-keys.js';
import type { FenceGate, SessionLock } from './lock.js';
import type { OwnerHints } from './owner-hint.js';
import type { EndedReason, SessionRecord } from './registry.js';

export type { StreamFilter, StreamInfo, TaskCancelOutcome } from '../core/context.js';
// The fleet's types a front or the routing core names, here so that they import this file only.
export type {
  AffinityKeyStore,
  FleetKey,
  KeyFilter,
  KeyHolder,
  KeyKind,
  KeyLocation,
  LiveKey,
} from './affinity-keys.js';
export type { FenceGate, LockLease, SessionLock } from './lock.js';
export type { OwnerHints } from './owner-hint.js';
export type { EndedReason } from './registry.js';

declare module '../core/context.js' {
  interface AgentContext {
    /**
     * The fleet layer (`agent/fleet/`): the Redis `FleetCoordinator` with `--redis`, else the
     * network-free `LocalCoordinator`. Both fronts place every new session through it. Optional: a
     * front given a context without one (tests) creates its own `LocalCoordinator`.
     */
    readonly coordinator?: Coordinator;
  }
}

/** What the fleet layer needs from the agent. */
export type FleetContext = Pick<
  AgentContext,
  'config' | 'policy' | 'logger' | 'metrics' | 'sessions' | 'load' | 'upstreamHealth' | 'onSessionEnd'
>;

/** Headers of the agent-to-agent hop (stage 2 sets and reads them). */
export const FLEET_HEADERS = {
  /** The slot reserved for a new session on the instance a request is forwarded to. */
  reservation: 'x-sessionfleet-reservation',
  /** The instance that forwarded the request: a forwarded request is never forwarded again. */
  forwardedBy: 'x-sessionfleet-forwarded-by',
  /** The collaborative lock's fencing token, for the upstream to refuse stale writers. */
  fencingToken: 'x-sessionfleet-fencing-token',
} as const;

export interface NewSession {
  /** The authenticated principal; counts against `sessionsPerPrincipal`. */
  principal?: string;
  /** The tenant; counts against `sessionsPerTenant`. */
  tenant?: string;
  /**
   * The session id, when the client chose it (header affinity): an id whose session ended within
   * the last session lifetime is refused with the expired answer (`sessionEndedError`).
   */
  sessionId?: string;
}

/** What `open()` needs: a local placement, or what a forwarded request carried. */
export interface PlacementTicket {
  /**
   * The reservation holding the slot and quota places (`LocalCoordinator`: the quota places);
   * undefined for a session placed fail-open while Redis is unreachable.
   */
  readonly reservationId?: string | undefined;
  readonly principal?: string | undefined;
  readonly tenant?: string | undefined;
}

export interface LocalPlacement extends PlacementTicket {
  readonly kind: 'local';
}

export interface RemotePlacement extends PlacementTicket {
  readonly kind: 'remote';
  readonly reservationId: string;
  readonly instanceId: string;
  /** The owner's `--advertise` URL. */
  readonly advertise: string;
}

export type Placement = LocalPlacement | RemotePlacement;

export type Route =
  /** Held here: serve it. No Redis command was issued. */
  | { kind: 'local'; session: Session }
  /** Held by another live instance: forward to `advertise`. */
  | { kind: 'remote'; instanceId: string; advertise: string; via: 'registry' | 'cache' | 'hint' }
  /**
   * Its owner is gone and its state is on shared storage; this instance now owns it. Resume it
   * upstream (Copilot: `session.resume`), then call `adopt(id)`; call `abandon(id)` if that fails.
   */
  | { kind: 'adopt'; record: SessionRecord }
  /**
   * Not (or no longer) a session: answer with the policy's expired-session status. `reason`: how
   * it ended, if it ended within the last session lifetime (this instance's memory or, with
   * Redis, the fleet's), so that every agent answers as the one that ended it; else `unknown`.
   */
  | {
      kind: 'gone';
      reason: 'unknown' | EndedReason;
      /**
       * Only with `unknown` or `owner-lost`: an instance that may hold it all the same — the
       * cached owner or the id's signed owner hint names it and it is alive. A lapsed lease is an
       * inference; the live owner re-asserts what it holds (see docs/fleet.md, "A stalled Redis").
       */
      owner?: { instanceId: string; advertise: string };
      /**
       * Only with `unknown` or `owner-lost`, no live `owner`: an owner is named but this agent
       * cannot tell yet whether it is dead or was cut off along with the store (an unanswered
       * command, or less than one lease since the store answered again). Answer 503 + Retry-After.
       */
      unsure?: boolean;
    };

/**
 * What `routeHop()` answers for a session another agent forwarded here: held here, or adopted
 * here (as `route()` answers), else not this instance's, for the forwarding agent to route again.
 */
export type HopRoute = Extract<Route, { kind: 'local' | 'adopt' }> | { kind: 'not-owner' };

export interface OpenOptions {
  principal?: string;
  tenant?: string;
  meta?: Record<string, unknown>;
}

export interface SessionFilter {
  principal?: string;
  tenant?: string;
  instanceId?: string;
  /** Only sessions at least this old. */
  minAgeSeconds?: number;
  /** Only sessions at most this old. */
  maxAgeSeconds?: number;
  /** @default 1000 */
  limit?: number;
}

export interface FleetSessionInfo {
  id: string;
  owner: string | null;
  ownerAlive: boolean;
  principal: string | null;
  tenant: string | null;
  createdAt: string;
  expiresAt: string;
  lastActiveAt: string | null;
  ageSeconds: number;
  idleSeconds: number | null;
  resumable: boolean;
  /** Only for sessions held by the instance that answers. */
  inFlight?: number;
  openStreams?: number;
}

export interface FleetInstanceSummary {
  id: string;
  advertise: string;
  alive: boolean;
  self: boolean;
  capacity: number;
  used: number;
  free: number;
  draining: boolean;
  inFlight: number | null;
  /** Null without a fleet (no lease). */
  leaseExpiresInMs: number | null;
}

export interface TerminateResult {
  terminated: boolean;
  /** local: ended here; owner: ended by its owner; registry: the owner was gone, only the record ended. */
  via: 'local' | 'owner' | 'registry' | 'none';
  owner: string | null;
}

/** Ends one session properly upstream (the front's `terminate`); resolves false if it was not here. */
export type TerminateHandler = (sessionId: string) => Promise<boolean>;

/** `admin drain`'s answer: the instance takes no new sessions from now on. */
export interface DrainResult {
  instanceId: string;
  /** local: this instance; peer: another live instance of the fleet confirmed it. */
  via: 'local' | 'peer';
}

/** Makes this instance stop taking new sessions (the server's; sessions in flight go on). */
export type DrainHandler = () => Promise<void>;

/** The admin API's view (inventory and kill switch). */
export interface FleetAdmin {
  readonly instanceId: string;
  listSessions(filter?: SessionFilter): Promise<{ sessions: FleetSessionInfo[]; truncated: boolean }>;
  inspect(sessionId: string): Promise<FleetSessionInfo | undefined>;
  terminate(sessionId: string): Promise<TerminateResult>;
  listInstances(): Promise<FleetInstanceSummary[]>;
  /** MCP 2026 tasks and handles (the inventory lists the fleet's live ones). */
  readonly affinityKeys?: AffinityKeyStore;
  /** `admin drain`: a part of its own, so the coordinator does not grow another pair of methods. */
  readonly drains: InstanceDrains;
  /** The task and stream kill switches reach the agent that holds them through this. */
  readonly peers: PeerCalls;
}

/** Draining instances of the fleet on an operator's word (`admin drain`). */
export interface InstanceDrains {
  /**
   * Drains an instance of the fleet (this one, or a live peer asked over its channel): no new
   * sessions from now on, its sessions go on. Undefined: no live instance has that id. Throws
   * AgentError UPSTREAM_TIMEOUT when the peer does not confirm in time.
   */
  drain(instanceId: string): Promise<DrainResult | undefined>;
  /** The server's way to drain this instance; used for this instance and for its peers' requests. */
  onDrain(handler: DrainHandler): void;
}

/**
 * What the admin API asks of the agent that holds a task or a stream (ADR 0025): handled by the
 * front there, over Redis from any agent of the fleet (or at once when it is this one).
 */
export interface PeerOps {
  /** Cancel one MCP 2026 task upstream. */
  'cancel-task': { args: { taskId: string }; answer: TaskCancelOutcome };
  /** The open streams this agent holds, filtered. */
  'list-streams': { args: StreamFilter; answer: StreamInfo[] };
  /** Close the open streams that match (one by id, or a principal's). */
  'close-streams': { args: StreamFilter & { id?: string }; answer: StreamInfo[] };
}

export type PeerOp = keyof PeerOps;

/** One instance's answer to a peer call: `answered` false when it was silent or unreachable. */
export type PeerAnswer<Op extends PeerOp> =
  | { instanceId: string; answered: true; value: PeerOps[Op]['answer'] }
  | { instanceId: string; answered: false };

/** Calls to the agents of the fleet (this one included) for the admin API (ADR 0025). */
export interface PeerCalls {
  /** Registers this agent's handler of `op` (the server wires the front's). */
  handle<Op extends PeerOp>(op: Op, handler: (args: PeerOps[Op]['args']) => Promise<PeerOps[Op]['answer']>): void;
  /** Asks one instance (this one: at once, without Redis). */
  call<Op extends PeerOp>(instanceId: string, op: Op, args: PeerOps[Op]['args']): Promise<PeerAnswer<Op>>;
  /** Asks every live instance of the fleet, this one included, at once. */
  callAll<Op extends PeerOp>(op: Op, args: PeerOps[Op]['args']): Promise<Array<PeerAnswer<Op>>>;
}

/** The fleet-wide budget counts (`policy.limits`, ADR 0015). */
export interface BudgetShare {
  /** Writes this agent's counts (`<kind>\n<who>` → count); returns the rest of the fleet's, summed. */
  share(local: ReadonlyMap<string, number>): Promise<Map<string, number>>;
}

export interface Coordinator extends FleetAdmin {
  readonly mode: 'redis' | 'local';
  /** False while Redis is unreachable (always true for the local coordinator). */
  readonly available: boolean;
  /** The collaborative-session lock. */
  readonly lock: SessionLock;
  /** Fencing check where writes land (the owner). */
  readonly fence: FenceGate;
  /** Owner-hint codec, once a key is known. */
  readonly hints: OwnerHints | undefined;
  /** MCP 2026 task ids and handles: which instance holds each, for which principal. */
  readonly affinityKeys: AffinityKeyStore;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Takes no new sessions from now on; resumable idle sessions are handed off. */
  startDraining(): Promise<void>;
  /**
   * Chooses where a new session goes and reserves its slot and quota places; every new session
   * of both fronts comes through here, with and without Redis. Throws `AgentError`:
   * PRINCIPAL_QUOTA_REACHED / TENANT_QUOTA_REACHED, SESSION_LIMIT_REACHED (fleet full, with
   * Retry-After; a single instance leaves this to `open()` and the front's own check),
   * STORE_UNAVAILABLE (Redis away and not `failOpen`), DRAINING.
   */
  place(request?: NewSession, options?: { signal?: AbortSignal }): Promise<Placement>;
  /**
   * With Redis: shares this agent's budget counts (`policy.limits`) with the fleet. Absent on a
   * single instance.
   */
  readonly budgets?: BudgetShare;
  /** Registers a session this instance has just created upstream. Throws like `place()`. */
  open(ticket: PlacementTicket, sessionId: string, options?: OpenOptions): Promise<Session>;
  /** Gives back a placement that was never opened. */
  cancel(ticket: PlacementTicket): Promise<void>;
  route(sessionId: string): Promise<Route>;
  /**
   * `route()` for a session another agent forwarded here (a hop), which is never forwarded again.
   * `local` when held here, with no Redis command. Otherwise, if the registry names this instance
   * the owner — the forwarding agent's own lookup re-homed the session here — `route()`'s answer
   * when it is `local` or `adopt` (adopt it as `route()` says). Anything else — another owner, an
   * unknown or ended session, Redis unreachable — is `not-owner`: the forwarding agent forgets its
   * route and routes once more. Throws like `route()` (the fleet full while re-homing).
   */
  routeHop(sessionId: string): Promise<HopRoute>;
  adopt(sessionId: string, options?: { meta?: Record<string, unknown> }): Promise<Session>;
  abandon(sessionId: string): Promise<void>;
  /** Drops a cached remote owner (a forward failed, or the owner said it does not hold it). */
  forget(sessionId: string): void;
  /** A new unguessable session id, carrying a signed owner hint when a key is known. */
  mintSessionId(): string;
  /** The front's way to end a session properly; used by `terminate` and the kill switch. */
  onTerminate(handler: TerminateHandler): void;
  /**
   * With Redis: the reconcile after a restart (ADR 0022). Absent on a single instance, whose
   * in-memory store does not outlive the agent.
   */
  readonly reconcile?: RestartReconcile;
}

/** The front's side of the reconcile: ask the upstream about a session; end one there. */
export interface UpstreamSessions {
  check(session: EarlierSession, signal: AbortSignal): Promise<UpstreamSessionVerdict>;
  end(session: EarlierSession): Promise<void>;
}

/** The reconcile after a restart, as the server and the admin port see it (ADR 0022). */
export interface RestartReconcile {
  /** How the front asks its upstream; call before `start()`. Without it, nothing is reconciled. */
  askWith(upstream: UpstreamSessions): void;
  /** True while it (and the resync after it) runs: `/readyz` says so. */
  readonly running: boolean;
}

/**
 * `open()`'s answer when the session id is already registered to another instance (or already open here). `holder` is
 * who the registered session belongs to, as recorded when it was opened, so a front can tell a
 * client whose own session it is from a client naming someone else's.
 */
export class OwnershipConflictError extends Error {
  constructor(
    readonly sessionId: string,
    readonly owner: string | undefined,
    readonly holder: { readonly principal: string | undefined; readonly tenant: string | undefined },
  ) {
    super(`session ${JSON.stringify(sessionId)} is already held by ${owner ?? 'another instance'}`);
    this.name = 'OwnershipConflictError';
  }
}
