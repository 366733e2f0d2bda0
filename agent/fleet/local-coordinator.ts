/**
 * `LocalCoordinator`: the fleet contract for an agent started without `--redis` — one instance,
 * no network. The fronts call the same methods as in a fleet; the answers come from the local
 * session table: every session is local, the quotas per principal and tenant hold exactly as in
 * a fleet (`quotas.ts`: sessions and placements not yet opened both count, so two concurrent new
 * sessions cannot overshoot), the lock is in-process (`MemoryLock`), and the session-state
 * cleanup runs without a leader (there is nobody to race).
 *
 * A full instance is a full fleet, but `place()` leaves that answer to the instance: the fronts
 * check the session table themselves right after placing (the HTTP front with its Retry-After to
 * the soonest expiry) and `open()` refuses when the table is full — as a fleet's own instance
 * does after the fleet placed a session on it.
 */
import { randomBytes } from 'node:crypto';
import { AgentError } from '../core/errors.js';
import type { Session } from '../core/sessions.js';
import { LocalAffinityKeys } from './affinity-keys.js';
import { FenceGate, MemoryLock } from './lock.js';
import { LocalPeerCalls } from './peer-calls.js';
import { enforceQuotas, type QuotaHolder } from './quotas.js';
import { cleanSessionState, type StateCleanupReport } from './state-cleanup.js';
import type {
  Coordinator,
  DrainHandler,
  DrainResult,
  FleetContext,
  FleetInstanceSummary,
  FleetSessionInfo,
  HopRoute,
  InstanceDrains,
  NewSession,
  OpenOptions,
  Placement,
  PlacementTicket,
  Route,
  SessionFilter,
  TerminateHandler,
  TerminateResult,
} from './types.js';

export interface LocalCoordinatorOptions {
  /** How long a placement holds its quota places while it waits for `open()`. @default 60000 */
  reservationTtlMs?: number;
  stateCleanup?: { dir: string; intervalMs?: number; maxAgeSeconds?: number };
}

export class LocalCoordinator implements Coordinator {
  readonly mode = 'local' as const;
  readonly available = true;
  readonly instanceId: string;
  readonly lock: MemoryLock;
  readonly fence = new FenceGate();
  readonly hints = undefined;
  readonly affinityKeys: LocalAffinityKeys;
  /** One instance: every peer call is this instance's. */
  readonly peers: LocalPeerCalls;
  private readonly tenants = new Map<string, string>();
  /** Placements not yet opened or cancelled, by reservation id: they hold quota places. */
  private readonly reservations = new Map<string, QuotaHolder & { expiresAt: number }>();
  private reservationCount = 0;
  private terminator: TerminateHandler;
  /** One instance: `admin drain` can only name this one. */
  readonly drains: InstanceDrains;
  private timer: NodeJS.Timeout | undefined;
  private draining = false;
  lastCleanup: StateCleanupReport | undefined;

  constructor(
    private readonly context: FleetContext,
    private readonly options: LocalCoordinatorOptions = {},
  ) {
    this.instanceId = context.config.instanceId;
    this.affinityKeys = new LocalAffinityKeys(Date.now, this.instanceId);
    this.peers = new LocalPeerCalls(this.instanceId);
    const collaborative = context.policy.collaborative;
    this.lock = new MemoryLock({
      ttlMs: (collaborative?.lockTtlSeconds ?? 30) * 1000,
      waitMs: (collaborative?.lockWaitSeconds ?? 10) * 1000,
    });
    this.terminator = async (id) => context.sessions.end(id, 'terminated');
    let drainer: DrainHandler = () => this.startDraining();
    this.drains = {
      onDrain: (handler) => {
        drainer = handler;
      },
      drain: async (instanceId): Promise<DrainResult | undefined> => {
        if (instanceId !== this.instanceId) return undefined;
        await drainer();
        return { instanceId, via: 'local' };
      },
    };
    context.onSessionEnd((session) => {
      this.tenants.delete(session.id);
      this.fence.forget(session.id);
    });
  }

  async start(): Promise<void> {
    const cleanup = this.options.stateCleanup;
    if (!cleanup) return;
    this.timer = setInterval(() => {
      this.cleanStateNow().catch((error: unknown) =>
        this.context.logger.warn({ err: error }, 'session-state cleanup failed'),
      );
    }, cleanup.intervalMs ?? 60_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async startDraining(): Promise<void> {
    this.draining = true;
    this.context.sessions.startDraining();
  }

  async cleanStateNow(): Promise<StateCleanupReport | undefined> {
    const cleanup = this.options.stateCleanup;
    if (!cleanup) return undefined;
    this.lastCleanup = await cleanSessionState({
      dir: cleanup.dir,
      maxAgeMs: (cleanup.maxAgeSeconds ?? this.context.policy.sessionLifetimeSeconds) * 1000,
      isLive: async (ids) => new Set(ids.filter((id) => this.context.sessions.get(id))),
    });
    return this.lastCleanup;
  }

  onTerminate(handler: TerminateHandler): void {
    this.terminator = handler;
  }

  mintSessionId(): string {
    return randomBytes(16).toString('base64url');
  }

  /** Placements that hold quota places now (tests check that none is left behind). */
  get pendingPlacements(): number {
    this.reclaim();
    return this.reservations.size;
  }

  /** Gives back the places of reservations never opened within their TTL (as the placement script does). */
  private reclaim(): void {
    const now = Date.now();
    for (const [id, reservation] of this.reservations) if (reservation.expiresAt <= now) this.reservations.delete(id);
  }

  private *quotaHolders(): Iterable<QuotaHolder> {
    for (const session of this.context.sessions.list())
      yield { principal: session.principal, tenant: this.tenants.get(session.id) };
    yield* this.reservations.values();
  }

  async place(request: NewSession = {}): Promise<Placement> {
    if (this.draining || this.context.sessions.isDraining)
      throw new AgentError('DRAINING', 'this instance is draining', { retryAfterSeconds: 1 });
    this.reclaim();
    enforceQuotas(this.context.policy, request, this.quotaHolders());
    const reservationId = `local-${++this.reservationCount}`;
    this.reservations.set(reservationId, {
      principal: request.principal,
      tenant: request.tenant,
      expiresAt: Date.now() + (this.options.reservationTtlMs ?? 60_000),
    });
    return { kind: 'local', reservationId, principal: request.principal, tenant: request.tenant };
  }

  async open(ticket: PlacementTicket, sessionId: string, options: OpenOptions = {}): Promise<Session> {
    const principal = options.principal ?? ticket.principal;
    const tenant = options.tenant ?? ticket.tenant;
    // The reservation's quota places pass to the session. No second quota check: the places were
    // taken at place(), and one that outlived its TTL opens anyway, as in a fleet.
    if (ticket.reservationId !== undefined) this.reservations.delete(ticket.reservationId);
    const created = this.context.sessions.create(sessionId, {
      ...(principal !== undefined ? { principal } : {}),
      ...(tenant !== undefined ? { tenant } : {}),
      ...(options.meta ? { meta: options.meta } : {}),
    });
    if (!created.ok) {
      if (created.reason === 'draining')
        throw new AgentError('DRAINING', 'this instance is draining', { retryAfterSeconds: 1 });
      if (created.reason === 'exists')
        throw new AgentError('BAD_REQUEST', `session ${JSON.stringify(sessionId)} already exists`);
      const limit = this.context.sessions.capacity;
      throw new AgentError('SESSION_LIMIT_REACHED', `this instance already holds its limit of ${limit} sessions`, {
        details: { limit },
      });
    }
    if (created.evicted) {
      this.context.logger.info(
        { sessionId: created.evicted.id, for: sessionId },
        'evicted the least recently used session',
      );
    }
    if (tenant !== undefined) this.tenants.set(sessionId, tenant);
    return created.session;
  }

  async cancel(ticket: PlacementTicket): Promise<void> {
    if (ticket.reservationId !== undefined) this.reservations.delete(ticket.reservationId);
  }

  async route(sessionId: string): Promise<Route> {
    const found = this.context.sessions.lookup(sessionId);
    if (found.state === 'active') return { kind: 'local', session: found.session };
    return { kind: 'gone', reason: found.state === 'ended' ? found.reason : 'unknown' };
  }

  /** Without Redis no agent forwards here; a session not held here is nobody's. */
  async routeHop(sessionId: string): Promise<HopRoute> {
    const found = this.context.sessions.lookup(sessionId);
    return found.state === 'active' ? { kind: 'local', session: found.session } : { kind: 'not-owner' };
  }

  async adopt(sessionId: string): Promise<Session> {
    throw new Error(`adopt(${JSON.stringify(sessionId)}): a single instance never re-homes sessions`);
  }

  async abandon(sessionId: string): Promise<void> {
    this.context.sessions.end(sessionId, 'deleted');
  }

  forget(): void {}

  private describe(s: Session): FleetSessionInfo {
    const now = Date.now();
    return {
      id: s.id,
      owner: this.instanceId,
      ownerAlive: true,
      principal: s.principal ?? null,
      tenant: this.tenants.get(s.id) ?? null,
      createdAt: new Date(s.createdAt).toISOString(),
      expiresAt: new Date(s.expiresAt).toISOString(),
      lastActiveAt: new Date(s.lastActiveAt).toISOString(),
      ageSeconds: Math.max(0, Math.floor((now - s.createdAt) / 1000)),
      idleSeconds: Math.max(0, Math.floor((now - s.lastActiveAt) / 1000)),
      resumable: this.context.policy.sharedSessionState,
      inFlight: s.inFlight,
      openStreams: s.openStreams,
    };
  }

  async listSessions(filter: SessionFilter = {}): Promise<{ sessions: FleetSessionInfo[]; truncated: boolean }> {
    const limit = filter.limit ?? 1000;
    const now = Date.now();
    const matching = this.context.sessions
      .list()
      .filter((s) => {
        if (filter.principal !== undefined && s.principal !== filter.principal) return false;
        if (filter.tenant !== undefined && this.tenants.get(s.id) !== filter.tenant) return false;
        if (filter.instanceId !== undefined && filter.instanceId !== this.instanceId) return false;
        // Whole seconds, as shown in `ageSeconds`.
        const age = Math.floor((now - s.createdAt) / 1000);
        if (filter.minAgeSeconds !== undefined && age < filter.minAgeSeconds) return false;
        if (filter.maxAgeSeconds !== undefined && age > filter.maxAgeSeconds) return false;
        return true;
      })
      .sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
    return { sessions: matching.slice(0, limit).map((s) => this.describe(s)), truncated: matching.length > limit };
  }

  async inspect(sessionId: string): Promise<FleetSessionInfo | undefined> {
    const session = this.context.sessions.get(sessionId);
    return session ? this.describe(session) : undefined;
  }

  async terminate(sessionId: string): Promise<TerminateResult> {
    if (!this.context.sessions.get(sessionId)) return { terminated: false, via: 'none', owner: null };
    return { terminated: await this.terminator(sessionId), via: 'local', owner: this.instanceId };
  }

  async listInstances(): Promise<FleetInstanceSummary[]> {
    const sessions = this.context.sessions;
    const capacity = this.draining || sessions.isDraining ? 0 : sessions.capacity;
    return [
      {
        id: this.instanceId,
        advertise: this.context.config.advertise.href,
        alive: true,
        self: true,
        capacity,
        used: sessions.size,
        free: Math.max(0, capacity - sessions.size),
        draining: this.draining || sessions.isDraining,
        inFlight: this.context.load.inFlight,
        leaseExpiresInMs: null,
      },
    ];
  }
}
