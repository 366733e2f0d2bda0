/**
 * The rules of SPEC.md §2 that relate two or more fields. Each rule runs only on fields that passed
 * their own structural check, so one bad value never hides another rule's violation and every
 * violation is reported at once.
 */
import { describeValue } from './format.js';
import type { IsolationMode, PolicyInput } from './schema.js';

export interface PolicyIssue {
  /** Dotted path of the field, e.g. `affinity.headerName`; empty for the policy as a whole. */
  readonly path: string;
  /** The whole sentence, path and value included. */
  readonly message: string;
}

/** What the rules may see: each field either valid on its own, or absent. */
export interface CheckedFields {
  isolation?: IsolationMode;
  affinityType?: string;
  sessionsPerInstance?: number;
  concurrencyPerInstance?: number;
  sessionLifetimeSeconds?: number;
  sessionIdleTimeoutSeconds?: number;
  minInstances?: number;
  maxInstances?: number;
  asyncInvocation?: boolean;
  recycleAfterSession?: boolean;
  sharedSessionState?: boolean;
  copilotHostAccess?: boolean;
  instanceVcpu?: number;
  collaborativeEnabled?: boolean;
}

export interface RuleOutcome {
  errors: PolicyIssue[];
  warnings: PolicyIssue[];
  /** Values the isolation mode forces, to be written over the parsed policy. */
  forced: { sessionsPerInstance?: number; concurrencyPerInstance?: number };
}

const MIN_ISOLATION_VCPU = 2;

/**
 * @param fields the fields that passed their own checks, defaults applied
 * @param raw the policy as written, to tell a value the user chose from a default
 */
export function checkRules(fields: CheckedFields, raw: Partial<Record<keyof PolicyInput, unknown>>): RuleOutcome {
  const errors: PolicyIssue[] = [];
  const warnings: PolicyIssue[] = [];
  const forced: RuleOutcome['forced'] = {};
  const isolation = fields.isolation;
  const affinity = fields.affinityType;
  const hasAffinity = affinity !== undefined && affinity !== 'none';

  if (isolation === 'request') {
    if (hasAffinity) {
      errors.push({
        path: 'affinity.type',
        message: `request isolation cannot be combined with session affinity (affinity.type is ${describeValue(affinity)}); use affinity.type "none"`,
      });
    }
    // FC behaviour: a larger configured concurrency is ignored, with a warning, not an error.
    if (
      raw.concurrencyPerInstance !== undefined &&
      fields.concurrencyPerInstance !== undefined &&
      fields.concurrencyPerInstance > 1
    ) {
      warnings.push({
        path: 'concurrencyPerInstance',
        message: `concurrencyPerInstance (${fields.concurrencyPerInstance}) is ignored under request isolation: it is forced to 1`,
      });
    }
    if (
      raw.sessionsPerInstance !== undefined &&
      fields.sessionsPerInstance !== undefined &&
      fields.sessionsPerInstance > 1
    ) {
      warnings.push({
        path: 'sessionsPerInstance',
        message: `sessionsPerInstance (${fields.sessionsPerInstance}) is ignored under request isolation: it is forced to 1`,
      });
    }
    forced.concurrencyPerInstance = 1;
    forced.sessionsPerInstance = 1;
  }

  if (isolation === 'session') {
    if (affinity === 'none') {
      errors.push({
        path: 'affinity.type',
        message:
          'session isolation requires session affinity: affinity.type must be "mcp-streamable-http", "mcp-sse", "header", "cookie" or "copilot-jsonrpc", not "none"',
      });
    }
    if (
      raw.sessionsPerInstance !== undefined &&
      fields.sessionsPerInstance !== undefined &&
      fields.sessionsPerInstance !== 1
    ) {
      errors.push({
        path: 'sessionsPerInstance',
        message: `sessionsPerInstance (${fields.sessionsPerInstance}) cannot be changed under session isolation: it is always 1`,
      });
    }
    forced.sessionsPerInstance = 1;
  }

  if (
    (isolation === 'session' || isolation === 'request') &&
    fields.instanceVcpu !== undefined &&
    fields.instanceVcpu < MIN_ISOLATION_VCPU
  ) {
    errors.push({
      path: 'instanceVcpu',
      message: `${isolation} isolation requires an instance with at least ${MIN_ISOLATION_VCPU} vCPU (instanceVcpu is ${fields.instanceVcpu})`,
    });
  }

  if (fields.asyncInvocation === true) {
    if (hasAffinity) {
      errors.push({
        path: 'affinity.type',
        message: `affinity is not available for asynchronous (queued) invocations (asyncInvocation is true, affinity.type is ${describeValue(affinity)})`,
      });
    }
    if (isolation === 'session') {
      errors.push({
        path: 'isolation',
        message: 'session isolation is not available for asynchronous (queued) invocations (asyncInvocation is true)',
      });
    }
  }

  // The quota check uses the values the isolation mode forces, not the ones it overrides.
  const sessions = forced.sessionsPerInstance ?? fields.sessionsPerInstance;
  const concurrency = forced.concurrencyPerInstance ?? fields.concurrencyPerInstance;
  if (sessions !== undefined && concurrency !== undefined && sessions > concurrency) {
    errors.push({
      path: 'sessionsPerInstance',
      message: `sessionsPerInstance (${sessions}) must not exceed concurrencyPerInstance (${concurrency})`,
    });
  }

  const lifetime = fields.sessionLifetimeSeconds;
  const idle = fields.sessionIdleTimeoutSeconds;
  if (lifetime !== undefined && idle !== undefined && idle > lifetime) {
    errors.push({
      path: 'sessionIdleTimeoutSeconds',
      message: `sessionIdleTimeoutSeconds (${idle}) must not exceed sessionLifetimeSeconds (${lifetime})`,
    });
  }

  const min = fields.minInstances;
  const max = fields.maxInstances;
  if (min !== undefined && max !== undefined && min > max) {
    errors.push({
      path: 'minInstances',
      message: `minInstances (${min}) must not exceed maxInstances (${max})`,
    });
  }

  if (fields.recycleAfterSession === true && isolation !== undefined && isolation !== 'session') {
    errors.push({
      path: 'recycleAfterSession',
      message: `recycleAfterSession needs session isolation (isolation is ${describeValue(isolation)})`,
    });
  }

  if (
    fields.copilotHostAccess === true &&
    !(isolation === 'session' && fields.recycleAfterSession === true && fields.sharedSessionState !== true)
  ) {
    warnings.push({
      path: 'copilotHostAccess',
      message: `copilotHostAccess lets every Copilot user run shell commands and read files, plugins, extensions, MCP servers and logs on a host that holds other users' session state (isolation ${describeValue(isolation ?? 'shared')}${fields.sharedSessionState === true ? ', sharedSessionState' : ''}${isolation === 'session' && fields.recycleAfterSession !== true ? ', no recycleAfterSession' : ''}): any user can read any other user's sessions`,
    });
  }

  if (
    fields.collaborativeEnabled === true &&
    (isolation === 'request' || isolation === 'session' || affinity === 'none')
  ) {
    errors.push({
      path: 'collaborative',
      message:
        isolation === 'request' || isolation === 'session'
          ? `collaborative sessions cannot be combined with ${isolation} isolation`
          : 'collaborative sessions need session affinity (affinity.type is "none")',
    });
  }

  return { errors, warnings, forced };
}

/** The default expired-session status of SPEC.md §4: 404 where MCP clients re-initialize on it. */
export function defaultExpiredSessionStatus(affinityType: string): number {
  return affinityType === 'header' || affinityType === 'cookie' ? 401 : 404;
}

/** vCPUs below which session and request isolation are refused (FC's rule, SPEC.md §2). */
export const ISOLATION_MIN_VCPU = MIN_ISOLATION_VCPU;
