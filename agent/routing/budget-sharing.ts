/**
 * The budgets of `policy.limits` for one agent, whichever front it runs (ADR 0015, ADR 0025):
 * one `Budgets` and, with `--redis` and a per-caller limit set, its counts shared with the fleet
 * every second. Both fronts build theirs here, so the HTTP and the Copilot front count and share
 * the same way; a limit is checked against this agent's live count plus the fleet's as of the
 * last sync, and with Redis away the last known counts stay.
 */
import type { LimitsSettings } from '../../policy/index.js';
import type { Logger } from '../core/logger.js';
import type { AgentMetrics } from '../core/metrics.js';
import type { BudgetShare } from '../fleet/types.js';
import { Budgets } from './budgets.js';

/** How often this agent's counts are shared with the fleet (with Redis and a per-caller limit). */
export const BUDGET_SYNC_MS = 1000;

export class BudgetSharing {
  readonly budgets: Budgets;
  private readonly timer: NodeJS.Timeout | undefined;
  private syncing = false;
  private stopped = false;

  constructor(
    limits: LimitsSettings,
    private readonly options: {
      /** Which front counts the refusals (`sessionfleet_limit_refusals_total{front}`). */
      front: 'http' | 'copilot';
      metrics: AgentMetrics;
      logger: Logger;
      /** The coordinator's fleet-wide share; absent on a single instance. */
      fleet: BudgetShare | undefined;
      intervalMs?: number;
    },
  ) {
    const refusals = options.metrics.limitRefusals;
    this.budgets = new Budgets(limits, { onRefusal: (limit) => refusals.inc({ front: options.front, limit }) });
    if (options.fleet && this.budgets.shared) {
      this.timer = setInterval(() => this.sync(), options.intervalMs ?? BUDGET_SYNC_MS);
      this.timer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /** This agent's counts out, the rest of the fleet's in; one sync at a time. */
  private sync(): void {
    const fleet = this.options.fleet;
    if (!fleet || this.syncing || this.stopped) return;
    this.syncing = true;
    fleet
      .share(this.budgets.snapshot())
      .then((remote) => this.budgets.setRemote(remote))
      .catch((error: unknown) =>
        this.options.logger.debug(
          { err: error instanceof Error ? error.message : String(error) },
          'budget sync failed',
        ),
      )
      .finally(() => {
        this.syncing = false;
      });
  }
}
