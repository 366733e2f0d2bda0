// The construct library's public surface. Constructs are added here as they are written.
export * from '../policy/index.js';
export * from './agent-container.js';
export * from './azure-container-apps-session-fleet.js';
export * from './azure-container-instances-session-fleet.js';
export { type ResolvedFleetPolicy, resolveFleetPolicy, SessionFleetValidationError } from './fleet-policy.js';
export * from './kubernetes-session-fleet.js';
