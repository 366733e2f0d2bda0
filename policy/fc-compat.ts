/**
 * Alibaba Cloud Function Compute names for the same settings, so that an existing FC configuration
 * can be brought over as it is. FC keeps the affinity settings in `sessionAffinityConfig` (an object,
 * or the JSON string its API returns); the same keys are also accepted at the top level.
 *
 * | Function Compute                                   | sessionfleet                      |
 * | -------------------------------------------------- | --------------------------------- |
 * | instanceIsolationMode SHARE / REQUEST_EXCLUSIVE / SESSION_EXCLUSIVE | isolation shared / request / session |
 * | instanceConcurrency                                | concurrencyPerInstance            |
 * | sessionAffinity MCP_STREAMABLE / MCP_SSE / HEADER_FIELD / GENERATED_COOKIE / NONE | affinity.type |
 * | sessionConcurrencyPerInstance                      | sessionsPerInstance               |
 * | sessionTTLInSeconds                                | sessionLifetimeSeconds            |
 * | sessionIdleTimeoutInSeconds                        | sessionIdleTimeoutSeconds         |
 * | affinityHeaderFieldName                            | affinity.headerName               |
 * | sseEndpointPath                                    | affinity.ssePath                  |
 * | cookieName                                         | affinity.cookieName               |
 * | disableSessionIdReuse                              | (always true here: an expired id is never reused) |
 */
import { describeValue } from './format.js';
import type { PolicyIssue } from './rules.js';

const ISOLATION: Record<string, string> = {
  SHARE: 'shared',
  REQUEST_EXCLUSIVE: 'request',
  SESSION_EXCLUSIVE: 'session',
};

const AFFINITY: Record<string, string> = {
  MCP_STREAMABLE: 'mcp-streamable-http',
  MCP_SSE: 'mcp-sse',
  HEADER_FIELD: 'header',
  GENERATED_COOKIE: 'cookie',
  NONE: 'none',
};

/** FC keys of the affinity config that map to a top-level field of ours. */
const SESSION_KEYS: Record<string, string> = {
  sessionConcurrencyPerInstance: 'sessionsPerInstance',
  sessionTTLInSeconds: 'sessionLifetimeSeconds',
  sessionIdleTimeoutInSeconds: 'sessionIdleTimeoutSeconds',
};

/** FC keys of the affinity config that map into our `affinity` object. */
const AFFINITY_KEYS: Record<string, string> = {
  affinityHeaderFieldName: 'headerName',
  sseEndpointPath: 'ssePath',
  cookieName: 'cookieName',
};

export const FUNCTION_COMPUTE_KEYS = [
  'instanceIsolationMode',
  'instanceConcurrency',
  'sessionAffinity',
  'sessionAffinityConfig',
  ...Object.keys(SESSION_KEYS),
  ...Object.keys(AFFINITY_KEYS).filter((k) => k !== 'cookieName'),
  'disableSessionIdReuse',
] as const;

export interface Translation {
  /** The policy with FC names replaced by ours. */
  policy: Record<string, unknown>;
  /** Our field path → the path the user wrote, so messages point at what is in the file. */
  origins: Map<string, string>;
  errors: PolicyIssue[];
  warnings: PolicyIssue[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** True when the object uses any Function Compute name. */
export function usesFunctionComputeNames(raw: Record<string, unknown>): boolean {
  return FUNCTION_COMPUTE_KEYS.some((k) => k in raw);
}

export function translateFunctionCompute(raw: Record<string, unknown>): Translation {
  const policy: Record<string, unknown> = { ...raw };
  const origins = new Map<string, string>();
  const errors: PolicyIssue[] = [];
  const warnings: PolicyIssue[] = [];

  const move = (fromPath: string, value: unknown, toPath: string, convert?: (v: unknown) => unknown) => {
    const [head, tail] = toPath.split('.') as [string, string | undefined];
    const target = tail === undefined ? policy : ensureAffinity(policy);
    const key = tail ?? head;
    if (target[key] !== undefined) {
      errors.push({
        path: fromPath,
        message: `${fromPath} (Function Compute's name for ${toPath}) and ${toPath} are both set: keep one`,
      });
      return;
    }
    target[key] = convert ? convert(value) : value;
    origins.set(toPath, fromPath);
  };

  const mapEnum = (table: Record<string, string>) => (v: unknown) =>
    typeof v === 'string' && table[v.toUpperCase()] !== undefined ? table[v.toUpperCase()] : v;

  if ('instanceIsolationMode' in raw) {
    const v = raw.instanceIsolationMode;
    delete policy.instanceIsolationMode;
    if (typeof v !== 'string' || ISOLATION[v.toUpperCase()] === undefined) {
      errors.push({
        path: 'instanceIsolationMode',
        message: `instanceIsolationMode (${describeValue(v)}) must be one of ${Object.keys(ISOLATION)
          .map((k) => JSON.stringify(k))
          .join(', ')}`,
      });
    } else {
      move('instanceIsolationMode', v, 'isolation', mapEnum(ISOLATION));
    }
  }
  if ('instanceConcurrency' in raw) {
    delete policy.instanceConcurrency;
    move('instanceConcurrency', raw.instanceConcurrency, 'concurrencyPerInstance');
  }
  if ('sessionAffinity' in raw) {
    const v = raw.sessionAffinity;
    delete policy.sessionAffinity;
    if (typeof v !== 'string' || AFFINITY[v.toUpperCase()] === undefined) {
      errors.push({
        path: 'sessionAffinity',
        message: `sessionAffinity (${describeValue(v)}) must be one of ${Object.keys(AFFINITY)
          .map((k) => JSON.stringify(k))
          .join(', ')}`,
      });
    } else {
      move('sessionAffinity', v, 'affinity.type', mapEnum(AFFINITY));
    }
  }

  const sources: Array<[prefix: string, values: Record<string, unknown>]> = [['', raw]];
  if ('sessionAffinityConfig' in raw) {
    delete policy.sessionAffinityConfig;
    let config = raw.sessionAffinityConfig;
    if (typeof config === 'string') {
      try {
        config = JSON.parse(config);
      } catch {
        errors.push({
          path: 'sessionAffinityConfig',
          message: `sessionAffinityConfig (${describeValue(config)}) must be an object or a JSON string of one`,
        });
        config = {};
      }
    }
    if (isRecord(config)) {
      sources.push(['sessionAffinityConfig.', config]);
      for (const key of Object.keys(config)) {
        if (!(key in SESSION_KEYS) && !(key in AFFINITY_KEYS) && key !== 'disableSessionIdReuse') {
          errors.push({
            path: `sessionAffinityConfig.${key}`,
            message: `sessionAffinityConfig.${key} is not a known Function Compute setting`,
          });
        }
      }
    } else {
      errors.push({
        path: 'sessionAffinityConfig',
        message: `sessionAffinityConfig (${describeValue(config)}) must be an object or a JSON string of one`,
      });
    }
  }

  for (const [prefix, values] of sources) {
    for (const [fcKey, ourKey] of Object.entries(SESSION_KEYS)) {
      if (!(fcKey in values)) continue;
      if (prefix === '') delete policy[fcKey];
      move(`${prefix}${fcKey}`, values[fcKey], ourKey);
    }
    for (const [fcKey, ourKey] of Object.entries(AFFINITY_KEYS)) {
      // `cookieName` at the top level is not an FC name; only inside sessionAffinityConfig.
      if (!(fcKey in values) || (prefix === '' && fcKey === 'cookieName')) continue;
      if (prefix === '') delete policy[fcKey];
      move(`${prefix}${fcKey}`, values[fcKey], `affinity.${ourKey}`);
    }
    if ('disableSessionIdReuse' in values) {
      if (prefix === '') delete policy.disableSessionIdReuse;
      if (values.disableSessionIdReuse === false) {
        warnings.push({
          path: `${prefix}disableSessionIdReuse`,
          message: `${prefix}disableSessionIdReuse (false) is ignored: sessionfleet never reuses an expired session id, the client gets the expired-session status and starts a new session`,
        });
      }
    }
  }

  return { policy, origins, errors, warnings };
}

function ensureAffinity(policy: Record<string, unknown>): Record<string, unknown> {
  if (!isRecord(policy.affinity)) {
    policy.affinity = policy.affinity === undefined ? {} : policy.affinity;
  }
  if (!isRecord(policy.affinity)) {
    // The user wrote a non-object affinity: leave it for the structural check to report.
    return {};
  }
  policy.affinity = { ...policy.affinity };
  return policy.affinity as Record<string, unknown>;
}
