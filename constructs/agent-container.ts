/**
 * The agent sidecar as every platform runs it: its command line, image and grace period, built
 * from the names in policy/agent-interface.ts (ports, paths, flags, mounts) that the agent itself
 * reads. Platform constructs (Kubernetes, Azure) translate this neutral description into their
 * own resources.
 */
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
  /** HTTP path the agent probes on the app. @default - a TCP connect */
  readonly appHealthPath?: string;
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
  if (options.principals) args.push(flagArg('principals'), `${PRINCIPALS_MOUNT_PATH}/${PRINCIPALS_FILE_NAME}`);
  if (options.principalHeader) args.push(flagArg('principal-header'), options.principalHeader);
  if (options.tenantHeader) args.push(flagArg('tenant-header'), options.tenantHeader);
  if (options.appHealthPath) args.push(flagArg('health-path'), options.appHealthPath);
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
