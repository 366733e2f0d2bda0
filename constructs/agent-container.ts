/**
 * The agent sidecar as every platform runs it: its command line, image and grace period, built
 * from the names in policy/agent-interface.ts (ports, paths, flags, mounts) that the agent itself
 * reads. Platform constructs (Kubernetes, Azure) translate this neutral description into their
 * own resources.
 */
import { createHash } from 'node:crypto';
import type { IConstruct } from 'constructs';
import {
  AGENT_ADMIN_PORT,
  AGENT_CLIENT_PORT,
  flagArg,
  POLICY_FILE_NAME,
  POLICY_MOUNT_PATH,
  PRINCIPALS_FILE_NAME,
  PRINCIPALS_MOUNT_PATH,
} from '../policy/agent-interface.js';
import type { Policy } from '../policy/index.js';
import { type FleetJwt, jwtArgs } from './fleet-jwt.js';

/** The agent image the constructs use unless told otherwise (built from agent/Dockerfile). */
export const DEFAULT_AGENT_IMAGE = 'ghcr.io/sessionfleet/agent:0.1.0';

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
  /** JWT mode: principals from verified bearer tokens (exclusive with the headers). */
  readonly jwt?: FleetJwt;
  /** HTTP path the agent probes on the app. @default - a TCP connect */
  readonly appHealthPath?: string;
  /** The fleet's name (`--fleet`): agents with the same Redis and fleet name coordinate as one fleet. */
  readonly fleetName?: string;
  /** The agent's `--trusted-proxies`: CIDRs the principal header is accepted from. */
  readonly trustedProxies?: readonly string[];
  /** Shared session state: the directory whose stale sessions the agent removes (`--session-state-dir`). */
  readonly sessionStateDir?: string;
  /**
   * The app's private session-state directory as the agent sees it (`--app-state-dir`): the agent
   * stages each session's state between it and `sessionStateDir` (ADR 0019).
   */
  readonly appStateDir?: string;
}

/** Where the agent container mounts the shared session-state volume when it stages state (ADR 0019). */
export const AGENT_SHARED_STATE_PATH = '/var/lib/sessionfleet/shared-state';
/** Where the agent container mounts the app's private session-state volume (ADR 0019). */
export const AGENT_APP_STATE_PATH = '/var/lib/sessionfleet/app-state';

/**
 * Whether the agent stages session state for this policy: shared state in front of the Copilot
 * CLI, whose state layout (`<dir>/<sessionId>/`) the agent knows. Other apps keep their own layout,
 * so the shared volume stays mounted into them.
 */
export function stagesSessionState(policy: Policy, sharedState: boolean): boolean {
  return sharedState && policy.affinity.type === 'copilot-jsonrpc';
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

/** The agent's arguments; secrets (Redis URL, tokens) come from `AGENT_ENV` variables, never argv. */
export function agentArgs(options: AgentCommandOptions): string[] {
  const args = [
    flagArg('policy'),
    `${POLICY_MOUNT_PATH}/${POLICY_FILE_NAME}`,
    flagArg('upstream'),
    upstreamUrl(options.policy, options.appPort, options.appHost),
    flagArg('listen'),
    `0.0.0.0:${AGENT_CLIENT_PORT}`,
    // The platform's probes and scrapers reach the admin port from outside the agent's container.
    flagArg('admin-listen'),
    `0.0.0.0:${AGENT_ADMIN_PORT}`,
  ];
  // Right after the addresses: the fleet is part of where this agent belongs.
  if (options.fleetName !== undefined) args.push(flagArg('fleet'), options.fleetName);
  if (options.principals) args.push(flagArg('principals'), `${PRINCIPALS_MOUNT_PATH}/${PRINCIPALS_FILE_NAME}`);
  if (options.principalHeader) args.push(flagArg('principal-header'), options.principalHeader);
  if (options.tenantHeader) args.push(flagArg('tenant-header'), options.tenantHeader);
  args.push(...jwtArgs(options.jwt));
  if (options.appHealthPath) args.push(flagArg('health-path'), options.appHealthPath);
  if (options.trustedProxies !== undefined && options.trustedProxies.length > 0) {
    args.push(flagArg('trusted-proxies'), options.trustedProxies.join(','));
  }
  if (options.sessionStateDir !== undefined) args.push(flagArg('session-state-dir'), options.sessionStateDir);
  if (options.appStateDir !== undefined) args.push(flagArg('app-state-dir'), options.appStateDir);
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
