/**
 * The agent sidecar as every platform runs it: ports, command line, probe paths, mount paths.
 * Platform constructs (Kubernetes, Azure) translate this neutral description into their own
 * resources, so the agent's interface is described once.
 */
import { createHash } from 'node:crypto';
import type { IConstruct } from 'constructs';
import type { Policy } from '../policy/index.js';

/** Port clients (and peer agents) reach the agent on; the only port a fleet exposes. */
export const AGENT_CLIENT_PORT = 8080;
/** Health, metrics and admin API; never exposed outside the pod / container group. */
export const AGENT_ADMIN_PORT = 9090;
export const AGENT_HEALTH_PATH = '/healthz';
export const AGENT_READY_PATH = '/readyz';
export const AGENT_METRICS_PATH = '/metrics';

/**
 * The agent's executable on the agent image's PATH. Platforms that can only replace an image's whole
 * command line (Azure Container Instances) start the agent by this name.
 */
export const AGENT_EXECUTABLE = 'sessionfleet-agent';

/** The agent image the constructs use unless told otherwise (built from agent/Dockerfile). */
export const DEFAULT_AGENT_IMAGE = 'ghcr.io/sessionfleet/agent:0.1.0';

/** Where the policy file is mounted in the agent container. */
export const POLICY_MOUNT_PATH = '/etc/sessionfleet';
export const POLICY_FILE_NAME = 'policy.json';
/** Where the principals file (token → principal) is mounted, from a Secret. */
export const PRINCIPALS_MOUNT_PATH = '/etc/sessionfleet-principals';
export const PRINCIPALS_FILE_NAME = 'principals.json';

/** Where the Copilot CLI keeps session state (SPEC.md §5); the default mount of session storage. */
export const DEFAULT_SESSION_STATE_PATH = '/root/.copilot/session-state';

/** Environment variables the agent reads its secrets from (SESSIONFLEET_<FLAG>). */
export const AGENT_ENV = {
  redis: 'SESSIONFLEET_REDIS',
  upstreamToken: 'SESSIONFLEET_UPSTREAM_TOKEN',
  adminToken: 'SESSIONFLEET_ADMIN_TOKEN',
  instanceId: 'SESSIONFLEET_INSTANCE_ID',
  advertise: 'SESSIONFLEET_ADVERTISE',
  /** The tenant an instance serves under tenant isolation (`--tenant`). */
  tenant: 'SESSIONFLEET_TENANT',
} as const;

export interface AgentCommandOptions {
  readonly policy: Policy;
  /** Port the app listens on inside the pod / container group (on loopback where it can). */
  readonly appPort: number;
  /** Host the app listens on, seen from the agent. @default '127.0.0.1' */
  readonly appHost?: string;
  /** Whether a principals file is mounted at PRINCIPALS_MOUNT_PATH. */
  readonly principals?: boolean;
  /** HTTP fronts: a trusted header naming the principal. */
  readonly principalHeader?: string;
  /** HTTP fronts: a trusted header naming the principal's tenant. */
  readonly tenantHeader?: string;
  /** HTTP path the agent probes on the app. @default - a TCP connect */
  readonly appHealthPath?: string;
  /** The fleet's name (`--fleet`): agents with the same Redis and fleet name coordinate as one fleet. */
  readonly fleetName?: string;
  /** The agent's `--trusted-proxies`: CIDRs the principal header is accepted from. */
  readonly trustedProxies?: readonly string[];
  /** Shared session state: the directory whose stale sessions the agent removes (`--session-state-dir`). */
  readonly sessionStateDir?: string;
}

/** What the agent accepts as `--fleet`: 1–64 letters, digits, '.', '_' or '-'. */
export const FLEET_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const FLEET_NAME_RULE = "must be 1-64 letters, digits, '.', '_' or '-' (the agent's --fleet)";

/**
 * The fleet name a construct passes when none is given: the construct id in kebab case plus 8 hex
 * characters of a SHA-256 of the construct path. Deterministic (same path, same name), unique per
 * path (two fleets in one app never share a Redis key space by accident) and readable in Redis.
 */
export function fleetNameFromPath(scope: IConstruct): string {
  const base = scope.node.id
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40);
  const hash = createHash('sha256').update(scope.node.path).digest('hex').slice(0, 8);
  return base === '' ? `fleet-${hash}` : `${base}-${hash}`;
}

/** `http://` for HTTP fronts, `tcp://` for the Copilot CLI's JSON-RPC. */
export function upstreamUrl(policy: Policy, appPort: number, appHost = '127.0.0.1'): string {
  const scheme = policy.affinity.type === 'copilot-jsonrpc' ? 'tcp' : 'http';
  return `${scheme}://${appHost}:${appPort}`;
}

/** The agent's arguments; secrets (Redis URL, tokens) come from AGENT_ENV variables, never argv. */
export function agentArgs(options: AgentCommandOptions): string[] {
  const args = [
    '--policy',
    `${POLICY_MOUNT_PATH}/${POLICY_FILE_NAME}`,
    '--upstream',
    upstreamUrl(options.policy, options.appPort, options.appHost),
    '--listen',
    `0.0.0.0:${AGENT_CLIENT_PORT}`,
    '--admin-listen',
    `0.0.0.0:${AGENT_ADMIN_PORT}`,
  ];
  // Right after the addresses: the fleet is part of where this agent belongs.
  if (options.fleetName !== undefined) args.push('--fleet', options.fleetName);
  if (options.principals) args.push('--principals', `${PRINCIPALS_MOUNT_PATH}/${PRINCIPALS_FILE_NAME}`);
  if (options.principalHeader) args.push('--principal-header', options.principalHeader);
  if (options.tenantHeader) args.push('--tenant-header', options.tenantHeader);
  if (options.appHealthPath) args.push('--health-path', options.appHealthPath);
  if (options.trustedProxies !== undefined && options.trustedProxies.length > 0) {
    args.push('--trusted-proxies', options.trustedProxies.join(','));
  }
  if (options.sessionStateDir !== undefined) args.push('--session-state-dir', options.sessionStateDir);
  return args;
}

/** Long enough for the agent to drain (policy.drainTimeoutSeconds) plus time to exit cleanly. */
export function terminationGracePeriodSeconds(policy: Policy): number {
  return policy.drainTimeoutSeconds + 15;
}

/** The policy file as it is written into a ConfigMap or a mounted file: stable key order, 2-space JSON. */
export function policyFileContent(policy: Policy): string {
  return `${JSON.stringify(policy, null, 2)}\n`;
}
