export type { AgentFlag } from './agent-interface.js';
export {
  AGENT_ADMIN_PORT,
  AGENT_CLIENT_PORT,
  AGENT_ENV,
  AGENT_EXECUTABLE,
  AGENT_FLAGS,
  AGENT_HEALTH_PATH,
  AGENT_METRICS_PATH,
  AGENT_PATHS,
  AGENT_READY_PATH,
  DEFAULT_ADMIN_LISTEN,
  DEFAULT_LISTEN,
  DEFAULT_SESSION_STATE_PATH,
  envName,
  flagArg,
  PLACEMENT_DEMAND_METRIC,
  POLICY_FILE_NAME,
  POLICY_MOUNT_PATH,
  PRINCIPALS_FILE_NAME,
  PRINCIPALS_MOUNT_PATH,
  SESSION_UTILIZATION_METRIC,
} from './agent-interface.js';
export { parseCpuQuantity } from './cpu.js';
export { FUNCTION_COMPUTE_KEYS, translateFunctionCompute } from './fc-compat.js';
export { policyJsonSchema } from './json-schema.js';
export type { LimitsSettings } from './limits.js';
export { LIMIT_DEFAULTS, LIMIT_RANGES, toolKey } from './limits.js';
export { defaultExpiredSessionStatus, ISOLATION_MIN_VCPU } from './rules.js';
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
} from './schema.js';
export {
  AFFINITY_TYPES,
  DEFAULTS,
  EVICTION_POLICIES,
  EXPIRED_STATUS_RANGE,
  ISOLATION_MODES,
  LIMITS,
  RESERVED_HEADER_NAMES,
} from './schema.js';
export type { PolicyIssue, PolicyValidation } from './validate.js';
export { PolicyError, parsePolicy, validatePolicy, validatePolicyText } from './validate.js';
