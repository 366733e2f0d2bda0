/**
 * Validation and normalization of a policy: structural checks from `schema.ts`, then the rules of
 * `rules.ts`, all violations collected at once. Never throws on any input (`validatePolicy`); the
 * throwing form (`parsePolicy`) is for callers that want an exception.
 */
import type { z } from 'zod';
import { translateFunctionCompute, usesFunctionComputeNames } from './fc-compat.js';
import { closestName, describeValue } from './format.js';
import { limitsSchema } from './limits.js';
import { type CheckedFields, checkRules, defaultExpiredSessionStatus, type PolicyIssue } from './rules.js';
import { AFFINITY_TYPES, type Policy, type PolicyInput, policyInputSchema } from './schema.js';

export type { PolicyIssue };

export type PolicyValidation =
  | { ok: true; policy: Policy; errors: []; warnings: PolicyIssue[] }
  | { ok: false; policy?: undefined; errors: PolicyIssue[]; warnings: PolicyIssue[] };

/** Thrown by `parsePolicy`: carries every violation, one per line in `message`. */
export class PolicyError extends Error {
  readonly issues: readonly PolicyIssue[];
  constructor(issues: readonly PolicyIssue[], context = 'invalid policy') {
    super(`${context}:\n${issues.map((i) => `  - ${i.message}`).join('\n')}`);
    this.name = 'PolicyError';
    this.issues = issues;
  }
}

const TOP_LEVEL_KEYS = Object.keys(policyInputSchema.shape);
const AFFINITY_KEYS = ['type', 'headerName', 'cookieName', 'ssePath'];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function validatePolicy(input: unknown): PolicyValidation {
  if (!isRecord(input)) {
    const kind = Array.isArray(input) ? 'an array' : input === null ? 'null' : `a ${typeof input}`;
    return {
      ok: false,
      errors: [{ path: '', message: `the policy must be a JSON object, not ${kind}` }],
      warnings: [],
    };
  }

  const errors: PolicyIssue[] = [];
  const warnings: PolicyIssue[] = [];
  let raw: Record<string, unknown> = input;
  let origins = new Map<string, string>();
  if (usesFunctionComputeNames(input)) {
    const translated = translateFunctionCompute(input);
    raw = translated.policy;
    origins = translated.origins;
    errors.push(...translated.errors);
    warnings.push(...translated.warnings);
  }

  // One enum cannot hold two modes, but users coming from FC's two switches try to list both.
  if (Array.isArray(raw.isolation)) {
    const modes = raw.isolation;
    errors.push({
      path: 'isolation',
      message:
        modes.includes('request') && modes.includes('session')
          ? 'request isolation and session isolation cannot both be enabled'
          : `isolation (${describeValue(modes)}) must be a single mode, not a list`,
    });
    raw = { ...raw };
    delete raw.isolation;
  }

  const parsed = policyInputSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      errors.push(...describeIssue(issue, origins));
    }
  }

  const fields = checkedFields(raw);
  const outcome = checkRules(fields, raw);
  errors.push(...outcome.errors);
  warnings.push(...outcome.warnings);

  if (errors.length > 0 || !parsed.success) {
    return { ok: false, errors: dedupe(errors), warnings };
  }

  const { $schema: _ignored, expiredSessionStatus, ...rest } = parsed.data;
  const policy: Policy = {
    ...rest,
    ...outcome.forced,
    expiredSessionStatus: expiredSessionStatus ?? defaultExpiredSessionStatus(rest.affinity.type),
  };
  return { ok: true, policy: canonicalOrder(policy), errors: [], warnings };
}

/** Validates and returns the normalized policy, or throws a `PolicyError` listing every violation. */
export function parsePolicy(input: unknown): Policy {
  const result = validatePolicy(input);
  if (!result.ok) throw new PolicyError(result.errors);
  return result.policy;
}

/** Parses policy text (JSON), reporting a syntax error with its position instead of throwing. */
export function validatePolicyText(text: string): PolicyValidation {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    return { ok: false, errors: [{ path: '', message: `the policy is not valid JSON: ${detail}` }], warnings: [] };
  }
  return validatePolicy(value);
}

/** Each field on its own: what the cross-field rules may rely on. */
function checkedFields(raw: Record<string, unknown>): CheckedFields {
  const shape = policyInputSchema.shape;
  const field = <K extends keyof typeof shape>(key: K): z.output<(typeof shape)[K]> | undefined => {
    const result = shape[key].safeParse(raw[key]);
    return result.success ? (result.data as z.output<(typeof shape)[K]>) : undefined;
  };
  const affinity = raw.affinity;
  const affinityType =
    isRecord(affinity) &&
    typeof affinity.type === 'string' &&
    (AFFINITY_TYPES as readonly string[]).includes(affinity.type)
      ? affinity.type
      : undefined;
  return {
    isolation: field('isolation'),
    affinityType,
    sessionsPerInstance: field('sessionsPerInstance'),
    concurrencyPerInstance: field('concurrencyPerInstance'),
    sessionLifetimeSeconds: field('sessionLifetimeSeconds'),
    sessionIdleTimeoutSeconds: field('sessionIdleTimeoutSeconds'),
    minInstances: field('minInstances'),
    maxInstances: field('maxInstances'),
    asyncInvocation: field('asyncInvocation'),
    recycleAfterSession: field('recycleAfterSession'),
    sharedSessionState: field('sharedSessionState'),
    copilotHostAccess: field('copilotHostAccess'),
    instanceVcpu: field('instanceVcpu'),
    collaborativeEnabled: field('collaborative')?.enabled,
  };
}

function pathOf(path: readonly PropertyKey[]): string {
  return path.map((p) => String(p)).join('.');
}

function describeIssue(issue: z.core.$ZodIssue, origins: Map<string, string>): PolicyIssue[] {
  const ourPath = pathOf(issue.path);
  const shown = origins.get(ourPath) ?? ourPath;

  if (issue.code === 'unrecognized_keys') {
    const inAffinity = issue.path.length === 1 && issue.path[0] === 'affinity';
    return issue.keys.map((key) => {
      const keyPath = ourPath === '' ? key : `${ourPath}.${key}`;
      if (inAffinity) {
        const type = isRecord(issue.input) ? issue.input.type : undefined;
        const owner = AFFINITY_KEYS.includes(key) ? ownerOfAffinityKey(key) : undefined;
        return {
          path: keyPath,
          message: owner
            ? `${keyPath} is not a setting of affinity type ${describeValue(type)} (it belongs to ${JSON.stringify(owner)})`
            : `${keyPath} is not a known field${hint(key, AFFINITY_KEYS)}`,
        };
      }
      const known =
        ourPath === ''
          ? TOP_LEVEL_KEYS
          : ourPath === 'collaborative'
            ? ['enabled', 'lockTtlSeconds', 'lockWaitSeconds']
            : ourPath === 'limits'
              ? Object.keys(limitsSchema.unwrap().shape)
              : [];
      return { path: keyPath, message: `${keyPath} is not a known field${hint(key, known)}` };
    });
  }

  if (shown === '') {
    return [{ path: '', message: `the policy ${issue.message}` }];
  }
  if (issue.message === 'is required') {
    return [{ path: shown, message: `${shown} is required` }];
  }
  if (issue.code === 'invalid_union' && (ourPath === 'affinity' || ourPath === 'affinity.type')) {
    const type = isRecord(issue.input) ? issue.input.type : undefined;
    if (isRecord(issue.input)) {
      return [
        {
          path: 'affinity.type',
          message:
            type === undefined
              ? `affinity.type is required: one of ${AFFINITY_TYPES.map((t) => JSON.stringify(t)).join(', ')}`
              : `affinity.type (${describeValue(type)}) must be one of ${AFFINITY_TYPES.map((t) => JSON.stringify(t)).join(', ')}`,
        },
      ];
    }
  }
  return [{ path: shown, message: `${shown} (${describeValue(issue.input)}) ${issue.message}` }];
}

function ownerOfAffinityKey(key: string): string | undefined {
  return { headerName: 'header', cookieName: 'cookie', ssePath: 'mcp-sse' }[key];
}

function hint(key: string, known: readonly string[]): string {
  const near = closestName(key, known);
  return near ? ` (did you mean ${near}?)` : '';
}

function dedupe(issues: PolicyIssue[]): PolicyIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => {
    if (seen.has(issue.message)) return false;
    seen.add(issue.message);
    return true;
  });
}

/** Field order of the printed policy: the schema's order, so output is stable and diff-friendly. */
function canonicalOrder(policy: Policy): Policy {
  const ordered: Record<string, unknown> = {};
  for (const key of TOP_LEVEL_KEYS) {
    const value = (policy as Record<string, unknown>)[key];
    if (value !== undefined) ordered[key] = value;
  }
  return ordered as Policy;
}

export type { Policy, PolicyInput };
