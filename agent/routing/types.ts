/**
 * What a front asks the routing core (`Router.decide`) and what it gets back: a complete decision
 * for one request (HTTP request or upgrade, Copilot JSON-RPC request) that the front only carries
 * out over its transport. Every fleet rule — where a session lives, when it is created, re-homed,
 * forwarded, refused or answered as expired — is in `router.ts`, never in a front.
 */
import type { AgentError } from '../core/errors.js';
import type { Caller } from '../core/tenancy.js';
import type { EndedReason, KeyKind, LockLease, PlacementTicket } from '../fleet/types.js';
import type { AgentMark, VerifiedMark } from './mark.js';

export type { Caller } from '../core/tenancy.js';

/**
 * What to do with a session id this instance does not hold and the fleet does not place anywhere
 * (unknown, or ended):
 * - `create`: the client chose the id (header affinity); a first-seen id starts a session, placed
 *   fleet-wide; an id that ended within the last session lifetime is answered as expired;
 * - `resume`: a saved session the upstream can load again (Copilot `session.resume`); it is
 *   placed anew, whether or not it ended before;
 * - `reject`: only the upstream or the agent mints ids (MCP, cookie): answered as expired;
 * - `reject-cookie`: `reject`, which the front renders as a cookie refusal (it clears the cookie);
 * - `serve`: this instance's upstream answers for it (Copilot: the CLI says "Session not found").
 */
export type WhenMissing = 'create' | 'resume' | 'reject' | 'reject-cookie' | 'serve';

/**
 * The session a request names. `id` undefined: a request that starts a new session whose id is
 * not known yet (MCP `initialize`, a legacy SSE stream, a cookie to mint, Copilot `session.create`).
 * The HTTP front passes its affinity route object itself (same shape), so the hot path allocates
 * nothing for it.
 */
export interface SessionRef {
  readonly id: string | undefined;
  readonly whenMissing: WhenMissing;
}

/** The reference of a request that starts a new session. */
export const NEW_SESSION: SessionRef = Object.freeze({ id: undefined, whenMissing: 'create' });

/** A request another agent forwarded here with a verified mark: it is never forwarded again. */
export type Hop = VerifiedMark;

/** Another agent of the fleet, as the registry names it. */
export interface Peer {
  readonly instanceId: string;
  /** Its `--advertise` URL. */
  readonly advertise: string;
}

/**
 * The party waiting for a decision. `signal` aborts when it goes away (HTTP: the response closed;
 * Copilot: the client's connection closed): a placement made meanwhile is given back and the
 * decision is `left`. It is read only off the hot path, so a front may create it lazily.
 */
export interface Requester {
  readonly signal: AbortSignal;
  /**
   * Called when this instance re-homes the session (its owner died, its state is on shared
   * storage), before the fleet registers it here: loads it upstream (Copilot: `session.resume`
   * with the client's last params) and checks the caller may (authorization). A throw abandons
   * the session; an `AgentError` thrown becomes the `refuse` decision. Absent: nothing to load
   * (HTTP: the upstream finds the state on the shared storage by itself).
   */
  readonly adoptUpstream?: (sessionId: string) => Promise<void>;
}

/**
 * Serve it here: the session is held here (the hot path: decided synchronously, no Redis
 * command, no allocation), or this instance just re-homed it (`adopted`). The front admits the
 * request against its own session table (owner, tenant, concurrency) and sends it upstream.
 * Also the answer for `whenMissing: 'serve'` (the upstream answers for an unknown id).
 */
export interface Serve {
  readonly kind: 'serve';
  /** This decision re-homed the session here (the front may `abandon()` it if its own load fails). */
  readonly adopted: boolean;
}

/**
 * Create the new session here: placed on this instance (quotas per principal and tenant taken),
 * or by the agent that forwarded the request (`ticket.reservationId`: its reservation). The front
 * creates it upstream, then registers it with `Router.open(ticket, id)`, or gives the placement
 * back with `Router.cancel(ticket)` if it does not.
 */
export interface Create {
  readonly kind: 'create';
  readonly ticket: PlacementTicket;
}

/**
 * Forward the request to another agent: the session's owner, or the instance where the new
 * session was placed (`reservationId`). The front sends it with `mark` (HTTP: the
 * `x-sessionfleet-forwarded-by` header; Copilot: the `connect` of its hop to `to`) and
 * reports back: `failed()` when it could not be carried out, `retry()` when the peer was not
 * reachable or answered "not the owner" before anything reached the client.
 */
export interface Forward {
  readonly kind: 'forward';
  readonly to: Peer;
  /** The slot the placement reserved on `to`, for a new session; else undefined. */
  readonly reservationId: string | undefined;
  /**
   * The signed mark for `to` (the router's purpose: `http-forward` or `copilot-hop`); the front
   * puts it on the wire (`markToHeader`, `markToObject`).
   */
  readonly mark: AgentMark;
  /** The forward failed for good: forgets the cached route, gives the placement back. Idempotent. */
  failed(): void;
  /**
   * Retry once on not-owner: forgets the route and decides once more (never forwarded twice by
   * the same decision chain). Undefined when this decision is already the retry, or a placement.
   * A front that cannot send the request again (a streamed body) fails instead.
   */
  readonly retry: (() => Promise<Decision>) | undefined;
}

/**
 * Answer with the policy's expired-session status (`status`). `reason`: how the session ended, if
 * this instance or the fleet remembers (every agent answers as the one that ended it), else
 * `unknown`; `fleet`: the fleet, not this instance's own table, said so; `notOwner`: a hop for a
 * session not held here — the front adds its "not the owner" signal so the forwarding agent
 * routes once more. `error`: the catalogue answer for fronts without cookies.
 */
export interface Expired {
  readonly kind: 'expired';
  readonly reason: 'unknown' | EndedReason;
  readonly fleet: boolean;
  readonly notOwner: boolean;
  readonly status: number;
  readonly error: AgentError;
}

/** Refuse with a catalogue error (quota reached, fleet full, store unreachable, draining…). */
export interface Refuse {
  readonly kind: 'refuse';
  readonly error: AgentError;
}

/** The requester went away while the decision was made; nothing is held for it. */
export interface Left {
  readonly kind: 'left';
}

export type Decision = Serve | Create | Forward | Expired | Refuse | Left;

/** The outcome of the collaborative lock sequence (`Router.lockForWrite`). */
export type WriteLock =
  /** Held: pass `lease.token` upstream (fencing), release the lease when the write is over. */
  | { readonly kind: 'held'; readonly lease: LockLease }
  /** SESSION_BUSY (still busy after the wait, or a newer writer holds it), or another refusal. */
  | { readonly kind: 'refused'; readonly error: AgentError }
  /** The session ended while the write waited; the front answers as for an ended session. */
  | { readonly kind: 'ended' }
  /** The requester left while waiting; nothing is held. */
  | { readonly kind: 'left' };

/** A new session's caller: who starts it and, when the client chose it, under which id. */
export interface NewSessionCaller extends Caller {
  readonly sessionId?: string;
}

/**
 * An affinity key a stateless (MCP 2026-07-28) request names instead of a session: a task id
 * (`tasks/get|update|cancel`, the id in `Mcp-Name`) or a handle in the `Mcp-Param-*` header the
 * policy names.
 */
export interface KeyRef {
  readonly kind: KeyKind;
  readonly key: string;
}

/**
 * The key is unknown to this caller: never recorded, expired, its owner gone, or created by
 * another principal or tenant — one answer for all, so a caller cannot tell another's key from a
 * missing one. The front answers as the spec answers an unknown task (JSON-RPC -32602, HTTP 200).
 */
export interface UnknownKey {
  readonly kind: 'unknown-key';
}

/** The routing core's answer for a request that names an affinity key. */
export type KeyDecision = Serve | Forward | Refuse | Left | UnknownKey;
