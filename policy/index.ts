export { parseCpuQuantity } from './cpu.js';
export { FUNCTION_COMPUTE_KEYS, translateFunctionCompute } from './fc-compat.js';
export { policyJsonSchema } from './json-schema.js';
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
