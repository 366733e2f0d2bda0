/**
 * The one place where a construct turns its policy prop into a validated `Policy`: the shared model
 * does the checking, this file adds the construct path and skips values that are unresolved tokens
 * (they are only known at apply time).
 */
import { Token } from 'cdktf';
import type { IConstruct } from 'constructs';
import { type Policy, PolicyError, type PolicyInput, parseCpuQuantity, validatePolicy } from '../policy/index.js';

/** A construct's invalid configuration: the message names the construct path, the prop, the value and the rule. */
export class SessionFleetValidationError extends Error {
  readonly constructPath: string;
  readonly problems: readonly string[];
  constructor(scope: IConstruct, problems: readonly string[]) {
    const path = scope.node.path;
    super(
      problems.length === 1
        ? `${path}: ${problems[0]}`
        : `${path}: ${problems.length} problems:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
    this.name = 'SessionFleetValidationError';
    this.constructPath = path;
    this.problems = problems;
  }
}

export interface ResolvedFleetPolicy {
  readonly policy: Policy;
  readonly warnings: readonly string[];
}

/**
 * Validates `input` with the shared model. `instanceCpu` (a Kubernetes quantity or a number of
 * cores) fills in `instanceVcpu` for the 2-vCPU rule unless the policy sets it.
 * Throws `SessionFleetValidationError` listing every problem.
 */
export function resolveFleetPolicy(
  scope: IConstruct,
  input: PolicyInput,
  options: { instanceCpu?: string | number; propName?: string } = {},
): ResolvedFleetPolicy {
  const prop = options.propName ?? 'policy';
  const concrete: Record<string, unknown> = {};
  const deferred: Record<string, unknown> = {};
  // Paths whose value is a token: no rule that mentions them can be judged at synth time.
  const unresolved: string[] = [];
  for (const [key, value] of Object.entries(input as unknown as Record<string, unknown>)) {
    if (Token.isUnresolved(value)) {
      deferred[key] = value;
      unresolved.push(key);
      if (key in STAND_INS) concrete[key] = STAND_INS[key];
    } else if (isPlainObject(value)) {
      // Nested settings (affinity.headerName, collaborative.lockTtlSeconds...): validate the object
      // with a stand-in that passes, then put the token back.
      const copy: Record<string, unknown> = { ...value };
      for (const [inner, innerValue] of Object.entries(value)) {
        if (!Token.isUnresolved(innerValue)) continue;
        copy[inner] = STAND_INS[inner] ?? innerValue;
        unresolved.push(`${key}.${inner}`);
      }
      concrete[key] = copy;
    } else {
      concrete[key] = value;
    }
  }
  const problems: string[] = [];
  if (
    concrete.instanceVcpu === undefined &&
    options.instanceCpu !== undefined &&
    !Token.isUnresolved(options.instanceCpu)
  ) {
    const vcpu = parseCpuQuantity(options.instanceCpu);
    if (vcpu === undefined)
      problems.push(`cpu (${JSON.stringify(options.instanceCpu)}) is not a CPU quantity such as "2", "1500m" or 0.5`);
    else concrete.instanceVcpu = vcpu;
  }
  const result = validatePolicy(concrete);
  const judged = result.errors.filter((e) => !unresolved.some((path) => e.path === path || e.message.includes(path)));
  problems.push(...judged.map((e) => quoteProp(prop, e.path, e.message)));
  if (problems.length > 0) throw new SessionFleetValidationError(scope, problems);
  // Errors that only concern tokens leave no normalized policy; fall back to the input as given.
  const normalized = result.ok ? result.policy : (concrete as unknown as Policy);
  const policy = { ...normalized, ...deferred } as Policy;
  for (const key of Object.keys(deferred))
    if (!(key in STAND_INS)) delete (policy as unknown as Record<string, unknown>)[key];
  Object.assign(policy, deferred);
  for (const path of unresolved) {
    const [outer, inner] = path.split('.') as [string, string | undefined];
    if (inner === undefined) continue;
    const source = (input as unknown as Record<string, Record<string, unknown>>)[outer];
    const target = { ...((policy as unknown as Record<string, Record<string, unknown>>)[outer] ?? {}) };
    target[inner] = source?.[inner];
    (policy as unknown as Record<string, unknown>)[outer] = target;
  }
  return { policy, warnings: result.warnings.map((w) => w.message) };
}

/**
 * Values that pass the structural checks and are the most permissive for the cross-field rules,
 * standing in for tokens during validation (so the defaults of the other fields still apply).
 */
const STAND_INS: Record<string, unknown> = {
  sessionsPerInstance: 1,
  concurrencyPerInstance: 200,
  sessionLifetimeSeconds: 2_592_000,
  sessionIdleTimeoutSeconds: 0,
  minInstances: 1,
  maxInstances: 1000,
  drainTimeoutSeconds: 30,
  placementWaitSeconds: 5,
  headerName: 'x-sessionfleet-session',
  cookieName: 'sessionfleet-session',
  ssePath: '/sse',
  lockTtlSeconds: 30,
  lockWaitSeconds: 10,
  enabled: true,
};

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The model says `sessionsPerInstance (300) must be ...`; a construct says
 * `'policy.sessionsPerInstance' (300) must be ...`, and prefixes rules that span fields with the prop.
 */
function quoteProp(prop: string, path: string, message: string): string {
  const quoted = path === '' ? `'${prop}'` : `'${prop}.${path}'`;
  return path !== '' && message.startsWith(path) ? `${quoted}${message.slice(path.length)}` : `${quoted}: ${message}`;
}

export { PolicyError };
