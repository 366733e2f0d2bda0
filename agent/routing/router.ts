/**
 * The routing core: the one place a fleet routing rule is written (issue 13). Both fronts call
 * `decide()` with the session a request names, its caller and, for a request another agent
 * forwarded, the verified mark; they get back a complete `Decision` and only carry it out over
 * their transport (Pingora's split: the engine moves bytes, one hook says where they go).
 *
 * With and without `--redis` the code path is the same: `LocalCoordinator` answers for a single
 * instance (every session is local, nothing is ever forwarded), `FleetCoordinator` for a fleet.
 * Nothing here asks which one it has.
 *
 * What the coordinator hands back as half-decisions is finished here:
 * - `adopt` (the owner died): loaded upstream if the front needs to (`Requester.adoptUpstream`),
 *   then `adopt()`, or `abandon()` on any failure — never left pending for its timer;
 * - `remote`: the forward's mark is signed here; a failed forward `forget()`s the route; a
 *   not-owner answer forgets it and decides once more (`Forward.retry`), once;
 * - placement: a hop's reservation is honoured, a draining instance refuses, a requester that
 *   left meanwhile gets its placement given back.
 */
import { randomBytes } from 'node:crypto';
import { AgentError, sessionBusy, sessionEndedError, sessionNotFound } from '../core/errors.js';
import type { Session, SessionTable } from '../core/sessions.js';
import type { Caller } from '../core/tenancy.js';
import type {
  Coordinator,
  EndedReason,
  LockLease,
  OpenOptions,
  Placement,
  PlacementTicket,
  Route,
} from '../fleet/types.js';
import { type AgentMark, type MarkCheck, type MarkPurpose, signMark, type VerifiedMark, verifyMark } from './mark.js';
import type {
  Decision,
  Expired,
  Forward,
  Hop,
  Left,
  NewSessionCaller,
  Peer,
  Refuse,
  Requester,
  Serve,
  SessionRef,
  WriteLock,
} from './types.js';

export interface RouterOptions {
  readonly coordinator: Coordinator;
  /** The session table of this instance (the hot path reads it, never the coordinator). */
  readonly sessions: SessionTable;
  readonly instanceId: string;
  readonly policy: {
    readonly expiredSessionStatus: number;
    readonly sharedSessionState: boolean;
  };
  /** The front's mark form on the wire: `http-forward` (HTTP) or `copilot-hop` (Copilot). */
  readonly purpose: MarkPurpose;
  /** True while this instance takes no new sessions (the agent or the front drains). */
  readonly draining: () => boolean;
}

const SERVE: Serve = Object.freeze({ kind: 'serve', adopted: false });
const ADOPTED: Serve = Object.freeze({ kind: 'serve', adopted: true });
const LEFT: Left = Object.freeze({ kind: 'left' });
const LOCK_LEFT: WriteLock = Object.freeze({ kind: 'left' });
const LOCK_ENDED: WriteLock = Object.freeze({ kind: 'ended' });
/** Minted ids without a fleet key: 144 random bits, base64url (24 characters). */
const MINTED_ID_BYTES = 18;

export class Router {
  readonly coordinator: Coordinator;
  /** This instance (the forwarding agent's mark names it; a front's not-owner signal too). */
  readonly instanceId: string;
  private readonly sessions: SessionTable;
  private readonly status: number;
  private readonly sharedState: boolean;
  private readonly purpose: MarkPurpose;
  private readonly draining: () => boolean;

  constructor(options: RouterOptions) {
    this.coordinator = options.coordinator;
    this.sessions = options.sessions;
    this.instanceId = options.instanceId;
    this.status = options.policy.expiredSessionStatus;
    this.sharedState = options.policy.sharedSessionState;
    this.purpose = options.purpose;
    this.draining = options.draining;
  }

  /**
   * Where one request goes. Synchronous — no Redis command, no allocation — for a session held
   * here (the hot path); otherwise the coordinator is asked. Never throws an `AgentError` (it
   * becomes `refuse`); anything else is an agent bug the front answers with INTERNAL_ERROR.
   */
  decide(ref: SessionRef, caller: Caller, hop: Hop | undefined, requester: Requester): Decision | Promise<Decision> {
    const id = ref.id;
    if (id === undefined) return this.place(caller, hop, requester);
    if (this.sessions.lookup(id).state === 'active') return SERVE;
    if (!hop) return this.route(ref, caller, requester, true);
    // Placed and routed by the forwarding agent: served here or refused, never forwarded again. A
    // first-seen id (or a saved session placed anew) comes with the slot it reserved here.
    if ((ref.whenMissing === 'create' || ref.whenMissing === 'resume') && hop.reservation !== undefined) {
      return {
        kind: 'create',
        ticket: { reservationId: hop.reservation, principal: caller.principal, tenant: caller.tenant },
      };
    }
    return this.routeHop(id, requester);
  }

  /**
   * Placement of every new session, both fronts, with and without Redis: the quotas per principal
   * and tenant are taken here (fleet-wide with Redis). `caller.sessionId`: the id the client chose
   * (header affinity), refused if it ended within the last session lifetime.
   */
  async place(caller: NewSessionCaller, hop: Hop | undefined, requester: Requester): Promise<Decision> {
    if (hop) {
      // The forwarding agent placed it here and reserved the slot (a Copilot create may carry none).
      return {
        kind: 'create',
        ticket: { reservationId: hop.reservation, principal: caller.principal, tenant: caller.tenant },
      };
    }
    if (this.draining()) {
      return refuse(
        new AgentError('DRAINING', 'this instance is shutting down and takes no new sessions', {
          retryAfterSeconds: 1,
        }),
      );
    }
    const signal = requester.signal;
    let placement: Placement;
    try {
      placement = await this.coordinator.place(
        {
          principal: caller.principal,
          tenant: caller.tenant,
          ...(caller.sessionId ? { sessionId: caller.sessionId } : {}),
        },
        { signal },
      );
    } catch (error) {
      if (signal.aborted) return LEFT;
      if (error instanceof AgentError) return refuse(error);
      throw error;
    }
    if (signal.aborted) {
      this.cancel(placement);
      return LEFT;
    }
    if (placement.kind === 'local') return { kind: 'create', ticket: placement };
    return this.forward(placement, placement.reservationId, () => this.cancel(placement), undefined);
  }

  /** Registers a session created upstream under a `create` decision's ticket. Throws like `Coordinator.open`. */
  open(ticket: PlacementTicket, sessionId: string, options?: OpenOptions): Promise<Session> {
    return this.coordinator.open(ticket, sessionId, options);
  }

  /** Gives back a `create` decision's placement that was not used. */
  cancel(ticket: PlacementTicket): void {
    this.coordinator.cancel(ticket).catch(() => {});
  }

  /** Gives up a session a `serve` decision adopted, when the front could not load it after all. */
  abandon(sessionId: string): Promise<void> {
    return this.coordinator.abandon(sessionId);
  }

  /** Drops a cached route (a hop connection to its owner closed). */
  forget(sessionId: string): void {
    this.coordinator.forget(sessionId);
  }

  /** A new unguessable session id; in a fleet it carries a signed owner hint. */
  mintSessionId(): string {
    return this.coordinator.hints
      ? this.coordinator.mintSessionId()
      : randomBytes(MINTED_ID_BYTES).toString('base64url');
  }

  /**
   * The mark a request arrived with, if it is valid for this instance; undefined (and why) when
   * it is not — an invalid mark is ignored, the request routed like any other.
   */
  acceptMark(mark: AgentMark | undefined): MarkCheck<VerifiedMark> {
    return verifyMark(this.coordinator.hints, this.purpose, this.instanceId, mark);
  }

  /** A fresh mark for `to` (a Copilot hop's `connect`); undefined while no fleet key is known. */
  markFor(to: string, reservation?: string): AgentMark | undefined {
    const hints = this.coordinator.hints;
    return hints ? signMark(hints, this.purpose, { from: this.instanceId, to, reservation }) : undefined;
  }

  /**
   * The collaborative lock sequence (SPEC.md §6) for one write, both fronts: waits in line for the
   * session's lock (at most `waitMs`, default the policy's wait), leaves the line when the
   * requester goes away, checks the fencing token where the write lands, and checks the session
   * is still there. The front passes `lease.token` upstream and releases the lease when the write
   * is over.
   */
  async lockForWrite(sessionId: string, requester: Requester, waitMs?: number): Promise<WriteLock> {
    const { lock, fence } = this.coordinator;
    const signal = requester.signal;
    let lease: LockLease;
    try {
      lease = await lock.acquire(sessionId, waitMs === undefined ? { signal } : { waitMs, signal });
    } catch (error) {
      if (signal.aborted) return LOCK_LEFT;
      if (!(error instanceof AgentError)) throw error;
      if (error.code !== 'SESSION_BUSY') return { kind: 'refused', error };
      // An ended session says so rather than "busy".
      if (this.sessions.lookup(sessionId).state !== 'active') return LOCK_ENDED;
      return {
        kind: 'refused',
        error: sessionBusy(sessionId, 'another write holds its lock', error.retryAfterSeconds),
      };
    }
    if (signal.aborted) {
      // Granted as the requester left: nobody is there to write for.
      lease.release().catch(() => {});
      return LOCK_LEFT;
    }
    // A holder that stalled past its TTL while a newer one wrote is refused where the write lands.
    if (!fence.admit(sessionId, lease.token)) {
      lease.release().catch(() => {});
      return { kind: 'refused', error: sessionBusy(sessionId, 'a newer writer holds its lock', 1) };
    }
    if (this.sessions.lookup(sessionId).state !== 'active') {
      lease.release().catch(() => {});
      return LOCK_ENDED;
    }
    return { kind: 'held', lease };
  }

  /** `decide` for a session not held here and not a hop: where the fleet says it lives. */
  private async route(ref: SessionRef, caller: Caller, requester: Requester, retryable: boolean): Promise<Decision> {
    const id = ref.id!;
    let routed: Awaited<ReturnType<Coordinator['route']>>;
    try {
      routed = await this.coordinator.route(id);
    } catch (error) {
      if (error instanceof AgentError) return refuse(error);
      throw error;
    }
    // An adoption route() started is finished whether or not the requester is still there: left
    // pending, it would be abandoned (the session deleted from the registry) when it times out.
    if (routed.kind === 'adopt') return this.adoptHere(id, requester);
    if (requester.signal.aborted) return LEFT;
    switch (routed.kind) {
      case 'local':
        return SERVE;
      case 'remote':
        return this.forward(
          routed,
          undefined,
          () => this.coordinator.forget(id),
          retryable
            ? () => {
                this.coordinator.forget(id);
                return this.again(ref, caller, requester);
              }
            : undefined,
        );
      case 'gone':
        return this.gone(ref, caller, requester, routed);
    }
  }

  /** The retry after a not-owner answer: decided once more, with no further retry. */
  private async again(ref: SessionRef, caller: Caller, requester: Requester): Promise<Decision> {
    if (this.sessions.lookup(ref.id!).state === 'active') return SERVE;
    return this.route(ref, caller, requester, false);
  }

  /** A session the fleet places nowhere: what `whenMissing` says, unless its end is remembered. */
  private gone(
    ref: SessionRef,
    caller: Caller,
    requester: Requester,
    routed: Extract<Route, { kind: 'gone' }>,
  ): Decision | Promise<Decision> {
    const id = ref.id!;
    const reason = routed.reason;
    // A saved session nobody holds any more (detached, handed off, ended here): placed anew.
    if (ref.whenMissing === 'resume') return this.place(caller, undefined, requester);
    if (ref.whenMissing === 'serve') return SERVE;
    // This instance remembers it ending: the answer it gave as a single agent.
    const local = this.sessions.lookup(id);
    if (local.state === 'ended') return this.expired(local.reason, false, false);
    // The fleet remembers how it ended (on another agent, or in the registry): the answer the
    // agent that ended it gives. A session lost with its owner is answered as an unknown id.
    if (reason !== 'unknown' && reason !== 'owner-lost') return this.expired(reason, true, false);
    // A live instance the id names may hold it all the same (its lease lapsed while the store
    // stalled; it re-asserts the session shortly): it answers — serving, or "not the owner",
    // which the client then gets. While that instance's fate is unclear: 503, never "not found".
    if (routed.owner) return this.forward(routed.owner, undefined, () => this.coordinator.forget(id), undefined);
    if (routed.unsure) {
      return refuse(
        new AgentError(
          'STORE_UNAVAILABLE',
          "the session's owner could not be confirmed yet after a fleet store interruption",
          {
            retryAfterSeconds: 1,
          },
        ),
      );
    }
    // A client-chosen id starts a session (the placement script checks the memory of ended ids
    // again, atomically); any other id is unknown.
    if (ref.whenMissing === 'create') return this.place({ ...caller, sessionId: id }, undefined, requester);
    return this.expired('unknown', false, false);
  }

  /**
   * `decide` for a hop naming a session not held here. The forwarding agent's lookup may have
   * re-homed it here (its owner died and the forwarder had no room): the registry names this
   * instance, which adopts it. Otherwise "not the owner", and the forwarder decides once more.
   */
  private async routeHop(id: string, requester: Requester): Promise<Decision> {
    let routed: Awaited<ReturnType<Coordinator['routeHop']>>;
    try {
      routed = await this.coordinator.routeHop(id);
    } catch (error) {
      if (error instanceof AgentError) return refuse(error);
      throw error;
    }
    switch (routed.kind) {
      case 'local':
        return requester.signal.aborted ? LEFT : SERVE;
      case 'adopt':
        return this.adoptHere(id, requester);
      case 'not-owner':
        return this.expired('unknown', true, true);
    }
  }

  /**
   * The session's owner died and the registry gave it to this instance. Its state lives upstream:
   * only with shared state can this instance go on with it; otherwise it is given up and the
   * client starts a new one. Finished even if the requester left (a pending adoption would be
   * abandoned by its timer anyway, later).
   */
  private async adoptHere(id: string, requester: Requester): Promise<Decision> {
    if (!this.sharedState) {
      await this.coordinator.abandon(id);
      return requester.signal.aborted ? LEFT : this.expired('owner-lost', true, false);
    }
    if (requester.adoptUpstream) {
      try {
        await requester.adoptUpstream(id);
      } catch (error) {
        await this.coordinator.abandon(id);
        if (error instanceof AgentError) return refuse(error);
        throw error;
      }
    }
    try {
      await this.coordinator.adopt(id);
    } catch (error) {
      if (error instanceof AgentError) return refuse(error);
      throw error;
    }
    return requester.signal.aborted ? LEFT : ADOPTED;
  }

  /** A forward to `to`, its mark signed; refused while this agent has no fleet key yet. */
  private forward(
    to: Peer,
    reservationId: string | undefined,
    onFailed: () => void,
    retry: (() => Promise<Decision>) | undefined,
  ): Forward | Refuse {
    const mark = this.markFor(to.instanceId, reservationId);
    if (!mark) {
      onFailed();
      return refuse(
        new AgentError('STORE_UNAVAILABLE', 'this agent does not know the fleet key yet', { retryAfterSeconds: 1 }),
      );
    }
    let failed = false;
    return {
      kind: 'forward',
      to: { instanceId: to.instanceId, advertise: to.advertise },
      reservationId,
      mark,
      failed: () => {
        if (failed) return;
        failed = true;
        onFailed();
      },
      retry,
    };
  }

  private expired(reason: 'unknown' | EndedReason, fleet: boolean, notOwner: boolean): Expired {
    return {
      kind: 'expired',
      reason,
      fleet,
      notOwner,
      status: this.status,
      error: reason === 'unknown' ? sessionNotFound() : sessionEndedError(reason),
    };
  }
}

function refuse(error: AgentError): Refuse {
  return { kind: 'refuse', error };
}
