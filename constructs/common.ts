// What every platform's constructs share, as users compose it (docs/adr/0100 "Public surface"):
// the policy model's types and parsers, the agent's ports and paths, the default agent image, the
// policy resolution with construct paths and its error, and the fleet summary. Needs neither
// provider. The agent's command line (flags, environment names, executable), mount paths and the
// summary's registry are the constructs' own business and stay unexported; the whole policy module,
// agent interface included, is `sessionfleet/policy`.

export {
  AGENT_ADMIN_PORT,
  AGENT_CLIENT_PORT,
  AGENT_HEALTH_PATH,
  AGENT_METRICS_PATH,
  AGENT_READY_PATH,
  AGENT_SERVING_PATH,
  DEFAULT_SESSION_STATE_PATH,
} from '../policy/agent-interface.js';
export type {
  Affinity,
  AffinityInput,
  AffinityType,
  CollaborativeInput,
  CollaborativeSettings,
  EvictionPolicy,
  IsolationMode,
  Policy,
  PolicyInput,
  PolicyIssue,
  PolicyValidation,
} from '../policy/index.js';
export {
  AFFINITY_TYPES,
  DEFAULTS,
  EVICTION_POLICIES,
  ISOLATION_MODES,
  LIMITS,
  PolicyError,
  parsePolicy,
  policyJsonSchema,
  validatePolicy,
  validatePolicyText,
} from '../policy/index.js';
export { DEFAULT_AGENT_IMAGE } from './agent-container.js';
export type { FleetJwt } from './fleet-jwt.js';
export { type ResolvedFleetPolicy, resolveFleetPolicy, SessionFleetValidationError } from './fleet-policy.js';
export { type FleetSummary, printFleetSummary, summarizeFleets } from './fleet-summary.js';
