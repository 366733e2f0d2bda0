/**
 * The fleet's housekeeping, done by one agent at a time — the one holding the janitor lead
 * (`leader.ts`): the registry sweep (expired sessions, dead instances' sessions handed off or
 * ended, stale reservations and waiters) and the session-state cleanup on the shared volume.
 */
import { JANITOR_RESOURCE, LeaderLease } from './leader.js';
import type { SessionLock } from './lock.js';
import type { FleetCoordinatorOptions } from './options.js';
import type { FleetState } from './state.js';
import { cleanSessionState, type StateCleanupReport } from './state-cleanup.js';

export class FleetJanitor {
  private readonly leader: LeaderLease;
  private lastCleanupAt = 0;
  /** The last state-cleanup report, for tests and the admin view. */
  lastCleanup: StateCleanupReport | undefined;

  constructor(
    private readonly s: FleetState,
    lock: SessionLock,
    private readonly stateCleanup: FleetCoordinatorOptions['stateCleanup'],
  ) {
    this.leader = new LeaderLease(lock, JANITOR_RESOURCE, s.o.janitorTtlMs);
  }

  /** One tick: leads if nobody does, then sweeps, and cleans state when its interval has passed. */
  async run(): Promise<void> {
    const s = this.s;
    if (!s.available || s.stopped) return;
    if (!(await this.leader.tryLead())) return;
    const swept = await s.registry.sweep({
      idleMs: s.context.policy.sessionIdleTimeoutSeconds * 1000,
      graceMs: s.o.deadGraceMs,
      budget: 200,
    });
    if (swept.expired + swept.handedOff + swept.dropped + swept.instancesRemoved > 0)
      s.context.logger.info(swept, 'fleet registry swept');
    // The scale list outlives a few missed sweeps, as the janitor lead does.
    await s.registry.syncScaleGauge(Math.max(4 * s.o.sweepIntervalMs, 60_000));
    const cleanup = this.stateCleanup;
    if (cleanup && Date.now() - this.lastCleanupAt >= (cleanup.intervalMs ?? 60_000)) {
      this.lastCleanupAt = Date.now();
      await this.cleanStateNow();
    }
  }

  /** One session-state cleanup run (the janitor calls it; exposed for tests and operators). */
  async cleanStateNow(): Promise<StateCleanupReport | undefined> {
    const cleanup = this.stateCleanup;
    if (!cleanup) return undefined;
    const { context, registry } = this.s;
    const report = await cleanSessionState({
      dir: cleanup.dir,
      maxAgeMs: (cleanup.maxAgeSeconds ?? context.policy.sessionLifetimeSeconds) * 1000,
      isLive: async (ids) => {
        const live = await registry.known(ids);
        for (const id of ids) if (context.sessions.get(id)) live.add(id);
        return live;
      },
    });
    this.lastCleanup = report;
    if (report.removed.length > 0)
      context.logger.info({ removed: report.removed.length, dir: cleanup.dir }, 'session state cleaned up');
    return report;
  }

  /** Leads the janitor now if nobody does (tests use it to make a run deterministic). */
  async sweepNow(): Promise<boolean> {
    if (!(await this.leader.tryLead())) return false;
    await this.s.registry.sweep({
      idleMs: this.s.context.policy.sessionIdleTimeoutSeconds * 1000,
      graceMs: this.s.o.deadGraceMs,
      budget: 1000,
    });
    return true;
  }

  async resign(): Promise<void> {
    await this.leader.resign();
  }
}
