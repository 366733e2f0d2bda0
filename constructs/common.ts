// What every platform's constructs share: the policy model, the agent's ports, paths and image,
// and the policy resolution with construct paths. Needs neither provider. The agent's command
// line, mount paths and environment names are the constructs' own business and stay unexported.

export {
  AGENT_ADMIN_PORT,
  AGENT_CLIENT_PORT,
  AGENT_HEALTH_PATH,
  AGENT_METRICS_PATH,
  AGENT_READY_PATH,
  DEFAULT_SESSION_STATE_PATH,
} from '../policy/agent-interface.js';
export * from '../policy/index.js';
export { DEFAULT_AGENT_IMAGE } from './agent-container.js';
export { DEFAULT_AGENT_IMAGE_PUBLISHED } from './agent-image.js';
export type { FleetJwt } from './fleet-jwt.js';
export { type ResolvedFleetPolicy, resolveFleetPolicy, SessionFleetValidationError } from './fleet-policy.js';
export * from './fleet-summary.js';
