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
  for (const [key, value] of Object.entries(input as Record<string, unknown>)) {
    if (Token.isUnresolved(value)) deferred[key] = value;
    else concrete[key] = value;
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
  if (!result.ok) problems.push(...result.errors.map((e) => quoteProp(prop, e.path, e.message)));
  if (problems.length > 0) throw new SessionFleetValidationError(scope, problems);
  const policy = { ...result.policy, ...deferred } as Policy;
  return { policy, warnings: result.warnings.map((w) => w.message) };
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
