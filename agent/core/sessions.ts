/**
 * The sessions this instance holds: the per-instance session quota, lifetime and idle timeout,
 * least-recently-used eviction, and the memory of ids that ended (so an expired id is told apart
 * from one never seen). Both fronts (HTTP and Copilot) use it; the fleet layer adds Redis on top.
 *
 * Expiry runs from one sweep timer for the whole table, never a timer per session, and every
 * lookup checks expiry itself, so a session is never served past its time even between sweeps.
 * Ended ids are kept in a bounded map until their lifetime would have run out.
 */
import type { Policy } from '../../policy/index.js';

export type EndReason =
  | 'deleted'
  | 'expired-lifetime'
  | 'expired-idle'
  | 'evicted'
  | 'terminated'
  | 'drained'
  | 'upstream-closed'
  /** Every client holding it let go (Copilot `session.detach`, or its connection closed); state persists. */
  | 'detached';

export interface Session {
  readonly id: string;
  /** The authenticated principal that created it (SPEC.md §7), if the front knows one. */
  readonly principal: string | undefined;
  /** The tenant it belongs to, if the front knows one: no caller of another tenant may use it. */
  readonly tenant: string | undefined;
  readonly createdAt: number;
  /** Absolute end of life: createdAt + sessionLifetimeSeconds. */
  readonly expiresAt: number;
  lastActiveAt: number;
  /** Requests of this session in flight now. */
  inFlight: number;
  /** Open streams (SSE, WebSocket, long poll): while any is open the session is not idle. */
  openStreams: number;
  /** Front-specific data (upstream session id, stream handles...). */
  readonly meta: Record<string, unknown>;
}

export type Lookup =
  | { state: 'active'; session: Session }
  | { state: 'ended'; reason: EndReason }
  | { state: 'unknown' };

export type CreateResult =
  | { ok: true; session: Session; evicted?: Session }
  | { ok: false; reason: 'full' | 'exists' | 'draining' };

export interface SessionTableOptions {
  policy: Pick<
    Policy,
    'sessionsPerInstance' | 'sessionLifetimeSeconds' | 'sessionIdleTimeoutSeconds' | 'evictionPolicy'
  > & { readonly limits?: Pick<Policy['limits'], 'evictIdleAfterSeconds'> };
  /** Called once for every session that ends, whatever the reason, after it left the table. */
  onEnd?: (session: Session, reason: EndReason) => void;
  now?: () => number;
  /** How often the sweep runs. @default 1000 ms (or the idle timeout, if shorter) */
  sweepIntervalMs?: number;
  /** How many ended ids are remembered at most. @default 100000 */
  maxRemembered?: number;
}

export class SessionTable {
  readonly capacity: number;
  private readonly sessions = new Map<string, Session>();
  /** id → [reason, forget-after]; insertion order is age order, so the oldest is first. */
  private readonly ended = new Map<string, [EndReason, number]>();
  private readonly lifetimeMs: number;
  private readonly idleMs: number;
  private readonly lru: boolean;
  /** Without LRU eviction, a full table still evicts a session idle this long (0: never). */
  private readonly evictIdleMs: number;
  private readonly now: () => number;
  private readonly onEnd: (session: Session, reason: EndReason) => void;
  private readonly maxRemembered: number;
  private timer: NodeJS.Timeout | undefined;
  private draining = false;

  constructor(options: SessionTableOptions) {
    this.capacity = options.policy.sessionsPerInstance;
    this.lifetimeMs = options.policy.sessionLifetimeSeconds * 1000;
    this.idleMs = options.policy.sessionIdleTimeoutSeconds * 1000;
    this.lru = options.policy.evictionPolicy === 'lru';
    this.evictIdleMs = (options.policy.limits?.evictIdleAfterSeconds ?? 0) * 1000;
    this.now = options.now ?? Date.now;
    this.onEnd = options.onEnd ?? (() => {});
    this.maxRemembered = options.maxRemembered ?? 100_000;
    const interval = options.sweepIntervalMs ?? Math.min(1000, this.idleMs > 0 ? this.idleMs : 1000);
    this.timer = setInterval(() => this.sweep(), Math.max(10, interval));
    this.timer.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  get free(): number {
    return Math.max(0, this.capacity - this.sessions.size);
  }

  /** Whether a new session could be placed here now (free slot, or an idle one to evict). */
  canAccept(): boolean {
    if (this.draining) return false;
    return this.free > 0 || this.evictionCandidate() !== undefined;
  }

  /** Whether a full table would evict a session for a new one now (LRU, or one idle past `evictIdleAfterSeconds`). */
  canEvict(): boolean {
    return !this.draining && this.evictionCandidate() !== undefined;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Stop taking new sessions; existing ones carry on. */
  startDraining(): void {
    this.draining = true;
  }

  /** Total requests in flight over all sessions. */
  get inFlight(): number {
    let total = 0;
    for (const s of this.sessions.values()) total += s.inFlight;
    return total;
  }

  /**
   * `createdAt` carries an earlier creation time over when a session moves here from another
   * instance (fleet re-homing), so its absolute lifetime still counts from its real creation.
   */
  create(
    id: string,
    options: { principal?: string; tenant?: string; meta?: Record<string, unknown>; createdAt?: number } = {},
  ): CreateResult {
    if (this.draining) return { ok: false, reason: 'draining' };
    this.sweep();
    if (this.sessions.has(id)) return { ok: false, reason: 'exists' };
    let evicted: Session | undefined;
    if (this.sessions.size >= this.capacity) {
      const candidate = this.evictionCandidate();
      if (!candidate) return { ok: false, reason: 'full' };
      this.end(candidate.id, 'evicted');
      evicted = candidate;
    }
    const now = this.now();
    const createdAt = Math.min(options.createdAt ?? now, now);
    const session: Session = {
      id,
      principal: options.principal,
      tenant: options.tenant,
      createdAt,
      expiresAt: createdAt + this.lifetimeMs,
      lastActiveAt: now,
      inFlight: 0,
      openStreams: 0,
      meta: options.meta ?? {},
    };
    this.sessions.set(id, session);
    this.ended.delete(id);
    return evicted ? { ok: true, session, evicted } : { ok: true, session };
  }

  /** Finds a session, ending it first if its time is up. Does not count as activity. */
  lookup(id: string): Lookup {
    const session = this.sessions.get(id);
    if (session) {
      const reason = this.expiry(session, this.now());
      if (!reason) return { state: 'active', session };
      this.end(id, reason);
      return { state: 'ended', reason };
    }
    const ended = this.ended.get(id);
    if (ended && ended[1] > this.now()) return { state: 'ended', reason: ended[0] };
    return { state: 'unknown' };
  }

  get(id: string): Session | undefined {
    const found = this.lookup(id);
    return found.state === 'active' ? found.session : undefined;
  }

  /** Marks activity: resets the idle clock and makes the session most recently used. */
  touch(session: Session): void {
    session.lastActiveAt = this.now();
    // Re-inserting keeps the Map in least-recently-used order for eviction.
    if (this.sessions.get(session.id) === session) {
      this.sessions.delete(session.id);
      this.sessions.set(session.id, session);
    }
  }

  beginRequest(session: Session): void {
    session.inFlight++;
    this.touch(session);
  }

  endRequest(session: Session): void {
    session.inFlight = Math.max(0, session.inFlight - 1);
    session.lastActiveAt = this.now();
  }

  openStream(session: Session): void {
    session.openStreams++;
    this.touch(session);
  }

  closeStream(session: Session): void {
    session.openStreams = Math.max(0, session.openStreams - 1);
    session.lastActiveAt = this.now();
  }

  /** Ends a session now. Returns false if it was not here. */
  end(id: string, reason: EndReason): boolean {
    const session = this.sessions.get(id);
    if (!session) return false;
    this.sessions.delete(id);
    this.remember(id, reason);
    this.onEnd(session, reason);
    return true;
  }

  /**
   * Removes a session whose creation failed upstream, as if it had never been placed: no end
   * listener runs and the id is not remembered as ended. Returns false if it was not here.
   */
  discard(id: string): boolean {
    return this.sessions.delete(id);
  }

  /** All live sessions, least recently used first. */
  list(): Session[] {
    return [...this.sessions.values()];
  }

  /** Ends every session whose lifetime or idle time ran out, and forgets old ended ids. */
  sweep(): void {
    const now = this.now();
    for (const session of [...this.sessions.values()]) {
      const reason = this.expiry(session, now);
      if (reason) this.end(session.id, reason);
    }
    for (const [id, [, forgetAt]] of this.ended) {
      if (forgetAt > now) break;
      this.ended.delete(id);
    }
  }

  /** How many ended ids are remembered now (bounded by `maxRemembered`). */
  get rememberedCount(): number {
    return this.ended.size;
  }

  /** Stops the sweep timer. The table stays usable (lookups still check expiry). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private expiry(session: Session, now: number): EndReason | undefined {
    if (now >= session.expiresAt) return 'expired-lifetime';
    const busy = session.inFlight > 0 || session.openStreams > 0;
    if (this.idleMs > 0 && !busy && now - session.lastActiveAt >= this.idleMs) return 'expired-idle';
    return undefined;
  }

  /**
   * The session a full table gives up for a new one: under LRU the least recently used idle one
   * (no request, no open stream); otherwise, with `limits.evictIdleAfterSeconds`, the least
   * recently used one idle at least that long — a client that never ended its session (a 2025
   * client that never sends DELETE), not one that paused.
   */
  private evictionCandidate(): Session | undefined {
    if (!this.lru && this.evictIdleMs <= 0) return undefined;
    const now = this.now();
    for (const session of this.sessions.values()) {
      if (session.inFlight !== 0 || session.openStreams !== 0) continue;
      if (this.lru || now - session.lastActiveAt >= this.evictIdleMs) return session;
    }
    return undefined;
  }

  private remember(id: string, reason: EndReason): void {
    // An ended id stays ended for one whole lifetime after it ended, however it ended: a client
    // that keeps sending it (header affinity lets the client choose ids) is told to start a new
    // session rather than silently given a fresh one under the old id. One lifetime from now for
    // every id also keeps the map in age order, which the sweep relies on.
    this.ended.delete(id);
    this.ended.set(id, [reason, this.now() + this.lifetimeMs]);
    while (this.ended.size > this.maxRemembered) {
      const oldest = this.ended.keys().next();
      if (oldest.done) break;
      this.ended.delete(oldest.value);
    }
  }
}
