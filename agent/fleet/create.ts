/**
 * Picks the coordinator for an agent's configuration: the Redis-backed `FleetCoordinator` with
 * `--redis`, the network-free `LocalCoordinator` otherwise (SPEC.md §8: "without it an embedded
 * in-memory store serves a single instance").
 */
import { FleetCoordinator, type FleetCoordinatorOptions } from './coordinator.js';
import { LocalCoordinator } from './local-coordinator.js';
import { parseFleetKeys } from './owner-hint.js';
import type { Coordinator, FleetContext } from './types.js';

/** Builds the coordinator for an agent's configuration; call `start()` before the fronts listen. */
export function createCoordinator(
  context: FleetContext,
  options: Omit<FleetCoordinatorOptions, 'redis'> = {},
): Coordinator {
  const { config } = context;
  const stateCleanup = options.stateCleanup ?? (config.sessionStateDir ? { dir: config.sessionStateDir } : undefined);
  if (!config.redis) return new LocalCoordinator(context, stateCleanup ? { stateCleanup } : {});
  return new FleetCoordinator(context, {
    ...options,
    fleet: options.fleet ?? config.fleet,
    ...(options.leaseMs === undefined && config.fleetLeaseMs !== undefined ? { leaseMs: config.fleetLeaseMs } : {}),
    ...(options.reconcileMs === undefined && config.fleetReconcileMs !== undefined
      ? { reconcileMs: config.fleetReconcileMs }
      : {}),
    ...(config.fleetKey && !options.hintKeys ? { hintKeys: parseFleetKeys(config.fleetKey) } : {}),
    ...(stateCleanup ? { stateCleanup } : {}),
  });
}
