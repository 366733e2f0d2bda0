/**
 * This instance's membership of the fleet: the lease renewed by heartbeat, registration (again)
 * whenever Redis becomes reachable, the resync that makes the registry agree with what is held
 * here, and the write-back of what happened locally — activity, once per flush interval, and
 * session ends, which wait here while Redis is away and land when it returns.
 */
import { randomBytes } from 'node:crypto';
import type { EndReason, Session } from '../core/sessions.js';
import type { FleetKeys } from './keys.js';
import { OwnerHints } from './owner-hint.js';
import type { EndedReason, LocalSessionState } from './registry.js';
import type { FleetState } from './state.js';

/** An end not written to Redis yet (it was away): how, and why (remembered with the id). */
export interface PendingEnd {
  mode: 'delete' | 'handoff';
  reason: EndedReason | undefined;
}

/** Ends after which a resumable session lives on elsewhere: its state was not deleted. */
const HAND_OFF_REASONS: ReadonlySet<EndReason> = new Set(['drained', 'evicted', 'upstream-closed']);

export class InstanceLease {
  private hintCodec: OwnerHints | undefined;
  /** Keys shared through Redis (newest first), when none is configured. */
  private sharedHintKeys: string[] = [];
  private connecting: Promise<void> | undefined;
  private readonly pendingEnds = new Map<string, PendingEnd>();
  /** Ends on their way to Redis; `stop()` lets them land. */
  private readonly endsInFlight = new Set<Promise<void>>();
  /** Local ends that must not touch the registry (another instance owns the session). */
  private readonly quietEnds = new Set<string>();
  /** When a heartbeat was last answered (our clock): how long the lease has gone unconfirmed. */
  private confirmedAt = 0;
  /** A heartbeat went unanswered since the last resync: the fleet may have judged us dead. */
  private unsure = false;
  /** Runs once, at the first registration that succeeds, before its resync (the reconcile). */
  private firstRegistration: (() => Promise<void>) | undefined;

  constructor(
    private readonly s: FleetState,
    private readonly keys: FleetKeys,
    private readonly configuredHintKeys: Buffer[] | undefined,
    /** Sessions being adopted are not the registry's to judge yet: resync leaves them out. */
    private readonly isAdopting: (sessionId: string) => boolean,
  ) {
    if (configuredHintKeys?.length) this.hintCodec = new OwnerHints(configuredHintKeys);
  }

  get hints(): OwnerHints | undefined {
    return this.hintCodec;
  }

  mintSessionId(): string {
    return this.hintCodec?.mint(this.s.instanceId) ?? randomBytes(16).toString('base64url');
  }

  /**
   * Work for the first registration, between the heartbeat and the resync (the reconcile after a
   * restart, ADR 0022): the lease is renewed while it runs, and requests for sessions not held
   * here wait for it and the resync (`FleetState.reconciling`). Run again at the next
   * registration if it fails.
   */
  onFirstRegistration(run: () => Promise<void>): void {
    this.firstRegistration = run;
  }

  /** (Re)registration after Redis became reachable: heartbeat, pending ends, then resync. */
  connected(): Promise<void> {
    const s = this.s;
    if (s.stopped) return Promise.resolve();
    this.connecting ??= (async () => {
      let reconciled: (() => void) | undefined;
      if (this.firstRegistration && s.reconciling === undefined) {
        s.reconciling = new Promise<void>((resolve) => {
          reconciled = resolve;
        });
      }
      try {
        await this.heartbeatNow();
        await this.ensureHintKey();
        await this.flushPendingEnds();
        const first = this.firstRegistration;
        if (first) {
          await this.keepingLease(first);
          this.firstRegistration = undefined;
        }
        await this.resync();
        s.registered = true;
        this.unsure = false;
        s.storeIs('up', 'registered with the fleet', { instances: s.view.size });
      } catch (error) {
        s.doubt();
        // Logged once per interruption, not once per heartbeat while Redis stays away.
        s.storeIs('unreachable', 'fleet registration failed; retrying on the next heartbeat', {
          err: error instanceof Error ? error.message : String(error),
        });
      } finally {
        this.connecting = undefined;
        if (reconciled) {
          s.reconciling = undefined;
          reconciled();
        }
      }
    })();
    return this.connecting;
  }

  /** Runs `work` with the lease renewed every heartbeat period, so peers never judge this instance dead meanwhile. */
  private async keepingLease(work: () => Promise<void>): Promise<void> {
    const timer = setInterval(() => void this.heartbeatNow().catch(() => {}), this.s.o.heartbeatMs);
    timer.unref();
    try {
      await work();
    } finally {
      clearInterval(timer);
    }
  }

  disconnected(): void {
    this.s.registered = false;
    this.unsure = true;
    this.s.doubt();
    this.s.storeIs('unreachable', 'fleet store (Redis) connection lost');
  }

  /**
   * A heartbeat failed while the connection stayed open: Redis is stalled (SIGSTOP, a long fork,
   * a saturated network) or slow. Once the lease has gone unconfirmed for two heartbeat periods
   * the store counts as unreachable — requests stop waiting on it (routing by cache and owner
   * hint, new sessions refused or placed fail-open) — and this instance registers again, with a
   * resync, as soon as a heartbeat is answered: it re-asserts what it holds (see docs/fleet.md).
   */
  private heartbeatFailed(error: unknown): void {
    this.unsure = true;
    this.s.doubt();
    if (!this.s.registered || Date.now() - this.confirmedAt < 2 * this.s.o.heartbeatMs) return;
    this.s.registered = false;
    this.s.storeIs('unreachable', 'fleet store (Redis) not answering', {
      err: error instanceof Error ? error.message : String(error),
      unconfirmedMs: Date.now() - this.confirmedAt,
    });
  }

  /**
   * Slots offered to placement: none while draining, while every request slot is taken (SPEC §4)
   * or while this instance's own upstream is not answering (new sessions go to healthy peers).
   */
  private capacityOffered(): number {
    if (this.s.isDraining() || this.s.saturated() || this.s.upstreamDown) return 0;
    return this.s.context.sessions.capacity;
  }

  private async heartbeatNow(): Promise<{ lapsed: boolean }> {
    const { context, registry } = this.s;
    const result = await registry.heartbeat({
      instanceId: this.s.instanceId,
      leaseMs: this.s.o.leaseMs,
      capacity: this.capacityOffered(),
      address: context.config.advertise.href,
      info: {
        inFlight: context.load.inFlight,
        sessions: context.sessions.size,
        draining: this.s.isDraining(),
        saturated: this.s.saturated(),
      },
      known: this.s.membership,
    });
    this.confirmedAt = Date.now();
    this.s.confirmed();
    this.s.clockOffset = result.now - Date.now();
    this.s.applyMembership(result);
    this.s.metrics.instances.set(result.running);
    context.metrics.placementDemand.set(result.demand);
    const lapsed = result.previousDeadline === undefined || result.previousDeadline <= result.now;
    return { lapsed };
  }

  async heartbeat(): Promise<void> {
    if (this.s.stopped || this.s.redis.status !== 'ready') return;
    if (!this.s.registered) return this.connected();
    let lapsed: boolean;
    try {
      ({ lapsed } = await this.heartbeatNow());
    } catch (error) {
      this.heartbeatFailed(error);
      throw error;
    }
    // Ends that failed while Redis flickered between two heartbeats.
    if (this.pendingEnds.size > 0) await this.flushPendingEnds();
    // A lapsed lease means the fleet may have treated this instance as dead meanwhile. So may an
    // unanswered heartbeat: a stalled Redis runs it late, renewing a lease that had lapsed, and
    // the reply that would have said so was dropped by the command timeout.
    if (lapsed || this.unsure) {
      await this.resync();
      this.unsure = false;
    }
  }

  /**
   * Without a configured key the fleet shares one through Redis: the first agent stores a random
   * key, the others read it. A Redis that restarted empty gets this agent's key back (SET NX), so
   * ids minted before the restart stay verifiable; if another agent's key won the race, this agent
   * signs with that one from now on and still verifies with every key it has used.
   */
  private async ensureHintKey(): Promise<void> {
    if (this.configuredHintKeys?.length) return;
    const redis = this.s.redis;
    const mine = this.sharedHintKeys[0] ?? randomBytes(32).toString('base64url');
    await redis.set(this.keys.hintKey, mine, 'NX');
    const current = await redis.get(this.keys.hintKey);
    if (!current || current === this.sharedHintKeys[0]) return;
    this.sharedHintKeys = [current, ...this.sharedHintKeys.filter((k) => k !== current)].slice(0, 4);
    this.hintCodec = new OwnerHints(this.sharedHintKeys.map((k) => Buffer.from(k, 'utf8')));
  }

  private localState(session: Session): LocalSessionState {
    return {
      id: session.id,
      principal: session.principal,
      tenant: this.s.meta.get(session.id)?.tenant,
      createdAt: session.createdAt,
      expiresAt: session.expiresAt,
      resumable: this.s.isResumable(session.id),
      lastActiveAt: session.lastActiveAt,
    };
  }

  /** Makes the registry agree with the local table; drops local copies another instance took over. */
  private async resync(): Promise<void> {
    const s = this.s;
    const held = s.context.sessions.list().filter((session) => !this.isAdopting(session.id));
    const result = await s.registry.resync(
      s.instanceId,
      held.map((session) => this.localState(session)),
    );
    s.metrics.ownershipConflicts.inc(result.conflicts.length);
    for (const { id, owner } of result.conflicts) {
      s.context.logger.warn({ sessionId: id, owner }, 'session was re-homed while this instance was cut off');
      this.endQuietly(id, 'terminated');
      s.remember(id, owner, s.view.get(owner)?.address ?? '');
    }
    for (const session of held) s.flushed.set(session.id, session.lastActiveAt);
    if (result.registered > 0 || result.released > 0 || result.conflicts.length > 0)
      s.context.logger.info({ ...result, conflicts: result.conflicts.length }, 'fleet registry resynced');
  }

  private async flushPendingEnds(): Promise<void> {
    for (const [id, { mode, reason }] of [...this.pendingEnds]) {
      await this.s.registry.end(id, { expectedOwner: this.s.instanceId, mode, reason });
      this.pendingEnds.delete(id);
    }
  }

  /**
   * Writes activity back: one command for every session active since the last flush, none if
   * nothing happened. Runs every `activityFlushMs`; callable before a shutdown.
   */
  async flush(): Promise<void> {
    const s = this.s;
    if (s.draining && s.o.handOffWhileDraining) this.handOffIdle();
    if (!s.available) return;
    const now = Date.now();
    const entries: Array<[string, number]> = [];
    for (const session of s.context.sessions.list()) {
      if (!s.meta.has(session.id)) continue;
      const at = session.inFlight > 0 || session.openStreams > 0 ? now : session.lastActiveAt;
      if (at > (s.flushed.get(session.id) ?? 0)) entries.push([session.id, at]);
    }
    if (entries.length === 0) return;
    await s.registry.touch(entries);
    for (const [id, at] of entries) s.flushed.set(id, at);
  }

  /** While draining, resumable sessions leave as soon as nothing of theirs is in flight. */
  private handOffIdle(): void {
    for (const session of this.s.context.sessions.list()) {
      if (this.s.isResumable(session.id) && session.inFlight === 0 && session.openStreams === 0)
        this.s.context.sessions.end(session.id, 'drained');
    }
  }

  /** The session table's end event: the end goes to the registry now, or once Redis is back. */
  sessionEnded(session: Session, reason: EndReason): void {
    const s = this.s;
    const resumable = s.isResumable(session.id);
    s.meta.delete(session.id);
    s.flushed.delete(session.id);
    if (this.quietEnds.delete(session.id)) return;
    // A handed-off session did not end; a detached one (Copilot) is resumed by design: neither id is
    // remembered as ended. Any other removed session's is, for one lifetime, fleet-wide.
    const end: PendingEnd = {
      mode: resumable && HAND_OFF_REASONS.has(reason) ? 'handoff' : 'delete',
      reason: reason === 'detached' ? undefined : reason,
    };
    if (!s.available) {
      this.pendingEnds.set(session.id, end);
      return;
    }
    const ending = s.registry
      .end(session.id, { expectedOwner: s.instanceId, ...end })
      .then(
        () => {},
        () => {
          this.pendingEnds.set(session.id, end);
        },
      )
      .finally(() => this.endsInFlight.delete(ending));
    this.endsInFlight.add(ending);
  }

  /** Ends a local copy without telling the registry: the registry's word (another owner, an end) stands. */
  endQuietly(sessionId: string, reason: EndReason): void {
    this.quietEnds.add(sessionId);
    this.s.context.sessions.end(sessionId, reason);
  }

  /** Writes an end of a session not held here (an abandoned adoption), now or once Redis is back. */
  async endUnheld(sessionId: string, end: PendingEnd): Promise<void> {
    await this.s.registry.end(sessionId, { expectedOwner: this.s.instanceId, ...end }).catch(() => {
      this.pendingEnds.set(sessionId, end);
    });
  }

  /** Before leaving: ends already on their way land, then activity and waiting ends are written. */
  async settle(): Promise<void> {
    await Promise.all(this.endsInFlight);
    if (this.s.redis.status !== 'ready') return;
    await this.flush().catch(() => {});
    await this.flushPendingEnds().catch(() => {});
  }

  /**
   * Leaves the fleet at once rather than when the lease runs out: placement stops counting this
   * instance, and whatever it still holds is re-homed (or ended) on its next request.
   */
  async leave(): Promise<void> {
    if (this.s.redis.status !== 'ready') return;
    await this.s.registry.leave(this.s.instanceId).catch(() => {});
  }
}
