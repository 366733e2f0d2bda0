// What every platform's constructs share: the policy model, the agent's neutral description and
// the policy resolution with construct paths. Needs neither provider.
export * from '../policy/index.js';
export * from './agent-container.js';
export * from './agent-image.js';
export { type ResolvedFleetPolicy, resolveFleetPolicy, SessionFleetValidationError } from './fleet-policy.js';
export * from './fleet-summary.js';
