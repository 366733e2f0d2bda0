/**
 * The rules between policy fields (`rules.ts`), written as sentences for the reference page and
 * the editor documentation of `PolicyInput`. Each carries a policy that breaks it: a test checks
 * that `validatePolicy` refuses that policy at one of the rule's fields, so a rule removed from
 * `rules.ts` cannot stay documented, and the documented wording cannot drift from a real check.
 */
import type { PolicyInput } from './policy-input.js';

export interface CrossFieldRule {
  /** Dotted paths of the fields the rule constrains; the first is where the error is reported. */
  readonly fields: readonly string[];
  /** The rule, as a sentence a policy author reads. */
  readonly rule: string;
  /** A policy the agent and the constructs refuse because of this rule. */
  readonly violation: PolicyInput;
}

const mcp = { type: 'mcp-streamable-http' } as const;

export const CROSS_FIELD_RULES: readonly CrossFieldRule[] = [
  {
    fields: ['affinity.type', 'isolation'],
    rule: 'request isolation cannot be combined with session affinity (use `affinity.type` "none")',
    violation: { isolation: 'request', affinity: mcp },
  },
  {
    fields: ['affinity.type', 'isolation'],
    rule: 'session isolation requires session affinity (`affinity.type` other than "none")',
    violation: { isolation: 'session', affinity: { type: 'none' } },
  },
  {
    fields: ['sessionsPerInstance', 'isolation'],
    rule: '`sessionsPerInstance` cannot be changed under session isolation: it is always 1',
    violation: { isolation: 'session', affinity: mcp, sessionsPerInstance: 5 },
  },
  {
    fields: ['instanceVcpu', 'isolation'],
    rule: 'session and request isolation need an instance with at least 2 vCPU',
    violation: { isolation: 'session', affinity: mcp, instanceVcpu: 1 },
  },
  {
    fields: ['affinity.type', 'asyncInvocation'],
    rule: 'affinity is not available for asynchronous (queued) invocations',
    violation: { asyncInvocation: true, affinity: mcp },
  },
  {
    fields: ['isolation', 'asyncInvocation'],
    rule: 'session isolation is not available for asynchronous (queued) invocations',
    violation: { asyncInvocation: true, isolation: 'session', affinity: { type: 'none' } },
  },
  {
    fields: ['sessionsPerInstance', 'concurrencyPerInstance'],
    rule: '`sessionsPerInstance` must not exceed `concurrencyPerInstance`',
    violation: { affinity: mcp, sessionsPerInstance: 50, concurrencyPerInstance: 10 },
  },
  {
    fields: ['sessionIdleTimeoutSeconds', 'sessionLifetimeSeconds'],
    rule: '`sessionIdleTimeoutSeconds` must not exceed `sessionLifetimeSeconds`',
    violation: { affinity: mcp, sessionLifetimeSeconds: 60, sessionIdleTimeoutSeconds: 120 },
  },
  {
    fields: ['minInstances', 'maxInstances'],
    rule: '`minInstances` must not exceed `maxInstances`',
    violation: { affinity: mcp, minInstances: 5, maxInstances: 2 },
  },
  {
    fields: ['recycleAfterSession', 'isolation'],
    rule: '`recycleAfterSession` needs session isolation',
    violation: { affinity: mcp, recycleAfterSession: true },
  },
  {
    fields: ['collaborative', 'isolation', 'affinity.type'],
    rule: 'collaborative sessions need session affinity and cannot be combined with session or request isolation',
    violation: { isolation: 'session', affinity: mcp, collaborative: { enabled: true } },
  },
];

/**
 * What an optional field without a schema default means when it is left out: the JSON Schema
 * cannot say it, the reference page and the editor documentation do.
 */
export const UNSET_MEANS: Readonly<Record<string, string>> = {
  expiredSessionStatus:
    '404 for `mcp-streamable-http`, `mcp-sse`, `copilot-jsonrpc` and `none`; 401 for `header` and `cookie`',
  sessionsPerPrincipal: 'no limit',
  sessionsPerTenant: 'no limit',
  instanceVcpu: 'unknown: the constructs fill it in from the container resources',
  collaborative: 'off: every session has one writer',
  'limits.requestsPerPrincipal': 'no limit',
  'limits.requestsPerTenant': 'no limit',
  'limits.tasksPerPrincipal': 'no limit (tasks are not counted)',
  'limits.tasksPerTenant': 'no limit (tasks are not counted)',
  'limits.streamsPerPrincipal': 'no limit',
  'limits.streamsPerTenant': 'no limit',
  'limits.toolConcurrency': 'no per-tool limit',
};

/** The rules that name `field` (a dotted path), in catalogue order. */
export function rulesFor(field: string): readonly CrossFieldRule[] {
  return CROSS_FIELD_RULES.filter((r) => r.fields.includes(field));
}
