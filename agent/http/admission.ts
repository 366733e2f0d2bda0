/**
 * Whether a request may proceed (SPEC.md §2, §4, §7): the session it names is live and belongs to
 * its principal, a new session fits in the instance's session quota, and the instance has a free
 * concurrency slot. Works on the in-memory session table and load counter only, so every rule is
 * unit-tested and fuzzed without sockets. The quotas per principal and tenant are not here: every
 * new session is placed by the coordinator first (`agent/fleet/quotas.ts`), with or without Redis.
 *
 * A new session whose id only the upstream knows (MCP `initialize`, the SSE `endpoint` event) is
 * first *reserved*: the slot is held while the request travels, so two concurrent initializes
 * cannot both take the last slot, and the session is created when the id arrives.
 */
import { AgentError, cookieEndedError, sessionEndedError, sessionNotFound } from '../core/errors.js';
import type { InstanceLoad } from '../core/load.js';
import type { CreateResult, Session, SessionTable } from '../core/sessions.js';
import type { Caller } from '../core/tenancy.js';
import type { PlacementTicket } from '../fleet/types.js';
import { Budgets } from '../routing/index.js';
import { HTTP_FRONT_DEFAULTS } from './options.js';

export interface AdmissionOptions {
  sessions: SessionTable;
  load: InstanceLoad;
  /** True while the agent drains: no new sessions. */
  draining: () => boolean;
  idleTimeoutSeconds: number;
  /** `limits.evictIdleAfterSeconds`: a full table gives up a session idle this long (0: never). @default 0 */
  evictIdleAfterSeconds?: number;
  now?: () => number;
  /**
   * Creates the session of a committed reservation: the front passes the coordinator's `open()`,
   * which also registers it (fleet-wide with Redis). Default: the session table's `create`.
   */
  create?: (id: string, reservation: Reservation, meta?: Record<string, unknown>) => CreateResult;
  /** A reservation given back unused: the front passes the coordinator's `cancel()` of its placement. */
  cancelled?: (reservation: Reservation) => void;
  /** `limits.streamsPerInstance`: open streams (and requests admitted as streams) at most. @default 100 */
  streamsPerInstance?: number;
  /** The budgets per principal, tenant and tool (`policy.limits`). @default none are limited */
  budgets?: Budgets;
}

export interface Reservation {
  readonly principal: string | undefined;
  settled: boolean;
  /** The coordinator's placement this slot was reserved under (its quota places; fleet-wide with Redis). */
  fleet?: PlacementTicket | undefined;
}

export type Admitted<T> = { ok: true; value: T } | { ok: false; error: AgentError };

export type ExistingResult =
  | { ok: true; session: Session }
  /** An id the table has never seen, under header affinity: the caller starts a session with it. */
  | { ok: true; session: undefined }
  | { ok: false; error: AgentError };

export class Admission {
  private readonly sessions: SessionTable;
  private readonly load: InstanceLoad;
  private readonly now: () => number;
  private readonly pending = new Set<Reservation>();
  readonly budgets: Budgets;
  readonly streamsPerInstance: number;
  /** Open streams, and requests admitted as streams that have not started streaming yet. */
  private streamPlaces = 0;

  constructor(private readonly options: AdmissionOptions) {
    this.sessions = options.sessions;
    this.load = options.load;
    this.now = options.now ?? Date.now;
    this.budgets = options.budgets ?? new Budgets({ streamsPerInstance: 100, evictIdleAfterSeconds: 0 });
    this.streamsPerInstance = options.streamsPerInstance ?? 100;
  }

  /** Stream places taken: open streams plus requests admitted as streams. */
  get streamCount(): number {
    return this.streamPlaces;
  }

  /** Reservations not yet turned into sessions. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * A request naming session `id`. `cookie` turns every miss into INVALID_COOKIE (the client drops
   * the cookie and gets a new one); `create` lets an unseen id start a session (header affinity).
   * `join`: the session may be used by a principal other than its creator (collaborative sessions),
   * never by a caller of another tenant than the session's (`tenant`: the caller's; a session
   * bound to a principal without a tenant is refused to callers with one).
   */
  existing(
    id: string,
    principal: string | undefined,
    whenMissing: 'create' | 'reject' | 'reject-cookie' | 'resume',
    join = false,
    tenant: string | undefined = undefined,
  ): ExistingResult {
    const found = this.sessions.lookup(id);
    if (found.state === 'active') {
      const session = found.session;
      // A principal is its name in its tenant: a session bound to a principal without a tenant is
      // not for the principal of that name in some tenant, nor the reverse.
      if (session.tenant !== tenant && (session.tenant !== undefined || session.principal !== undefined)) {
        return { ok: false, error: new AgentError('SESSION_FORBIDDEN', 'this session belongs to another tenant') };
      }
      if (session.principal !== undefined && session.principal !== principal && !join) {
        return {
          ok: false,
          error: new AgentError('SESSION_FORBIDDEN', 'this session belongs to another principal'),
        };
      }
      return { ok: true, session };
    }
    if (whenMissing === 'reject-cookie') {
      if (found.state === 'ended') return { ok: false, error: cookieEndedError(found.reason) };
      return {
        ok: false,
        error: new AgentError('INVALID_COOKIE', 'the cookie names no session on this instance', {
          details: { reason: 'unknown' },
        }),
      };
    }
    if (found.state === 'ended' && whenMissing !== 'resume')
      return { ok: false, error: sessionEndedError(found.reason) };
    if (whenMissing === 'create' || whenMissing === 'resume') return { ok: true, session: undefined };
    return { ok: false, error: sessionNotFound() };
  }

  /**
   * Holds a slot on this instance for a session about to be created, already placed by the
   * coordinator (`fleet`: its placement). Pair with `commit` or `cancel`.
   */
  reserve(principal: string | undefined, fleet?: PlacementTicket): Admitted<Reservation> {
    if (this.options.draining() || this.sessions.isDraining) {
      return {
        ok: false,
        error: new AgentError('DRAINING', 'this instance is shutting down and takes no new sessions', {
          retryAfterSeconds: HTTP_FRONT_DEFAULTS.retryAfterSeconds,
        }),
      };
    }
    if (!this.hasRoom()) {
      return {
        ok: false,
        error: new AgentError(
          'SESSION_LIMIT_REACHED',
          `this instance holds its maximum of ${this.sessions.capacity} sessions`,
          { retryAfterSeconds: this.secondsToFreeSlot(), details: { sessionsPerInstance: this.sessions.capacity } },
        ),
      };
    }
    const reservation: Reservation = { principal, settled: false, fleet };
    this.pending.add(reservation);
    return { ok: true, value: reservation };
  }

  /** Turns a reservation into the session `id`. */
  /** `meta`: the front's facts about the new session (the MCP path), set before it is registered. */
  commit(reservation: Reservation, id: string, meta?: Record<string, unknown>): Admitted<Session> {
    this.settle(reservation);
    const created = this.options.create
      ? this.options.create(id, reservation, meta)
      : this.sessions.create(id, { principal: reservation.principal, ...(meta ? { meta } : {}) });
    if (created.ok) return { ok: true, value: created.session };
    if (created.reason === 'exists') {
      // The upstream re-announced an id it already gave (or a client raced itself on a header id).
      const again = this.existing(id, reservation.principal, 'reject', false, reservation.fleet?.tenant);
      return again.ok && again.session ? { ok: true, value: again.session } : { ok: false, error: errorOf(again) };
    }
    if (created.reason === 'draining') {
      return {
        ok: false,
        error: new AgentError('DRAINING', 'this instance is shutting down and takes no new sessions'),
      };
    }
    return {
      ok: false,
      error: new AgentError(
        'SESSION_LIMIT_REACHED',
        `this instance holds its maximum of ${this.sessions.capacity} sessions`,
        {
          retryAfterSeconds: this.secondsToFreeSlot(),
          details: { sessionsPerInstance: this.sessions.capacity },
        },
      ),
    };
  }

  cancel(reservation: Reservation): void {
    if (reservation.settled) return;
    this.settle(reservation);
    this.options.cancelled?.(reservation);
  }

  /** Takes a concurrency slot (SPEC.md §4: summed over every session). Pair with `release`. */
  acquire(): AgentError | undefined {
    if (this.load.tryAcquire()) return undefined;
    return new AgentError(
      'CONCURRENCY_LIMIT_REACHED',
      `this instance is serving ${this.load.limit} requests, its limit`,
      {
        retryAfterSeconds: HTTP_FRONT_DEFAULTS.retryAfterSeconds,
        details: { concurrencyPerInstance: this.load.limit },
      },
    );
  }

  release(): void {
    this.load.release();
  }

  /**
   * Takes a stream place for a request that opens a long-lived stream (an MCP 2026
   * `subscriptions/listen`, a GET stream): the instance's `streamsPerInstance`, then the caller's
   * stream budget. `sessionless` streams carry no work and no session, so a draining instance
   * refuses them (the client opens it on an instance that stays). Pair with `releaseStream`.
   */
  acquireStream(caller: Caller, sessionless: boolean): AgentError | undefined {
    if (sessionless && this.options.draining()) {
      return new AgentError('DRAINING', 'this instance is shutting down and opens no new streams', {
        retryAfterSeconds: HTTP_FRONT_DEFAULTS.retryAfterSeconds,
      });
    }
    if (this.streamPlaces >= this.streamsPerInstance) {
      return new AgentError(
        'STREAM_LIMIT_REACHED',
        `this instance holds ${this.streamPlaces} open streams, its limit`,
        {
          retryAfterSeconds: HTTP_FRONT_DEFAULTS.retryAfterSeconds,
          details: { limit: 'streamsPerInstance', value: this.streamsPerInstance },
        },
      );
    }
    const refused = this.budgets.acquire('streams', caller);
    if (refused) return refused;
    this.streamPlaces++;
    return undefined;
  }

  /**
   * A response that turned into a stream without being admitted as one (an unexpected event
   * stream): it is counted, never refused — its headers are already on their way.
   */
  countStream(): void {
    this.streamPlaces++;
  }

  /** `budgeted`: the place was taken with `acquireStream` (the caller's budget is given back too). */
  releaseStream(caller: Caller | undefined, budgeted: boolean): void {
    if (this.streamPlaces > 0) this.streamPlaces--;
    if (budgeted && caller) this.budgets.release('streams', caller);
  }

  private settle(reservation: Reservation): void {
    if (reservation.settled) return;
    reservation.settled = true;
    this.pending.delete(reservation);
  }

  private hasRoom(): boolean {
    if (this.sessions.free > this.pending.size) return true;
    // With LRU eviction a full table still takes a session if an idle one can go; one at a time.
    return this.pending.size === 0 && this.sessions.canAccept();
  }

  /** When the next slot could free up by itself: the soonest lifetime or idle expiry, bounded. */
  private secondsToFreeSlot(): number {
    const now = this.now();
    const idleMs = this.options.idleTimeoutSeconds * 1000;
    const evictMs = (this.options.evictIdleAfterSeconds ?? 0) * 1000;
    let soonest = Number.POSITIVE_INFINITY;
    for (const session of this.sessions.list()) {
      let at = session.expiresAt;
      if (session.inFlight === 0 && session.openStreams === 0) {
        if (idleMs > 0) at = Math.min(at, session.lastActiveAt + idleMs);
        // An idle session can be given up for a new one this soon (a client that never ended it).
        if (evictMs > 0) at = Math.min(at, session.lastActiveAt + evictMs);
      }
      soonest = Math.min(soonest, at);
    }
    const seconds = Math.ceil((soonest - now) / 1000);
    return Math.min(
      HTTP_FRONT_DEFAULTS.maxSessionRetryAfterSeconds,
      Math.max(1, Number.isFinite(seconds) ? seconds : 1),
    );
  }
}

function errorOf(result: ExistingResult): AgentError {
  return result.ok ? sessionNotFound() : result.error;
}
