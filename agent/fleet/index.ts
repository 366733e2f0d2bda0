/** The fleet layer (Redis coordination between the agents of a fleet); see docs/fleet.md. */
export type { FleetAdminRoutesOptions } from './admin-routes.js';
export { fleetAdminRoutes } from './admin-routes.js';
export { FleetCoordinator, type FleetCoordinatorOptions, OwnershipConflictError } from './coordinator.js';
export { createCoordinator } from './create.js';
export { DEFAULT_FLEET, defaultPrefix, type FleetKeys, fleetKeys } from './keys.js';
export { LocalCoordinator, type LocalCoordinatorOptions } from './local-coordinator.js';
export {
  FenceGate,
  type LockLease,
  LockLostError,
  type LockOptions,
  MemoryLock,
  RedisLock,
  type SessionLock,
  withLock,
} from './lock.js';
export { OwnerHints, parseFleetKeys } from './owner-hint.js';
export type { SessionRecord } from './registry.js';
export * from './types.js';
