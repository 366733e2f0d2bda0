/**
 * The pod of a Kubernetes fleet: the app and the agent side by side. The agent holds the only
 * port clients reach (8080) and the admin port (9090: probes, metrics); the app listens on the
 * pod's loopback and is reached through the agent. Secrets enter containers only as `secretKeyRef`
 * environment variables or Secret volumes.
 */
import type {
  DeploymentV1SpecTemplateSpec,
  DeploymentV1SpecTemplateSpecContainer,
  DeploymentV1SpecTemplateSpecContainerEnv,
  DeploymentV1SpecTemplateSpecContainerVolumeMount,
  DeploymentV1SpecTemplateSpecVolume,
} from '@cdktf/provider-kubernetes/lib/deployment-v1/index.js';
import { Fn, Op, Token } from 'cdktf';
import {
  AGENT_ADMIN_PORT,
  AGENT_CLIENT_PORT,
  AGENT_ENV,
  AGENT_HEALTH_PATH,
  AGENT_METRICS_PATH,
  AGENT_READY_PATH,
  POLICY_FILE_NAME,
  POLICY_MOUNT_PATH,
  PRINCIPALS_FILE_NAME,
  PRINCIPALS_MOUNT_PATH,
} from '../policy/agent-interface.js';
import type { Policy } from '../policy/index.js';
import { agentArgs, terminationGracePeriodSeconds } from './agent-container.js';
import type { KubernetesSessionStorage } from './kubernetes-session-storage.js';
import { type KubernetesSecretKey, mebibytes } from './kubernetes-validation.js';

/** The app container: the session-holding server the agent fronts. */
export interface KubernetesAppContainer {
  /** Image of the app, e.g. a Copilot CLI image or an MCP server. */
  readonly image: string;
  /**
   * Port the app listens on inside the pod. Listen on loopback (127.0.0.1) where the app can, as
   * the Copilot CLI does by default; 8080 and 9090 belong to the agent.
   */
  readonly port: number;
  /**
   * Entrypoint of the app container.
   * @default - the image's ENTRYPOINT
   */
  readonly command?: readonly string[];
  /**
   * Arguments of the app container, e.g. `['--headless', '--port', '4321']` for the Copilot CLI.
   * @default - the image's CMD
   */
  readonly args?: readonly string[];
  /**
   * Plain environment variables. Never put a secret here: use `secretEnv`.
   * @default - none
   */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Environment variables read from Secret keys, e.g.
   * `{ COPILOT_GITHUB_TOKEN: { secretName: 'copilot-secrets', key: 'github-token' } }`.
   * The values never appear in the synthesized configuration.
   * @default - none
   */
  readonly secretEnv?: Readonly<Record<string, KubernetesSecretKey>>;
  /**
   * CPU request, a Kubernetes quantity ("2", "1500m"). Session and request isolation need at
   * least 2 vCPU (SPEC.md §2); this value (or `cpuLimit`, which Kubernetes uses as the request
   * when no request is given) is what that rule checks.
   * @default - `cpuLimit` when given, otherwise "2" under session and request isolation and "1" otherwise
   */
  readonly cpuRequest?: string;
  /**
   * CPU limit, a Kubernetes quantity.
   * @default - the CPU request
   */
  readonly cpuLimit?: string;
  /**
   * Memory request, in MiB.
   * @default 1024
   */
  readonly memoryRequestMiB?: number;
  /**
   * Memory limit, in MiB.
   * @default - the memory request
   */
  readonly memoryLimitMiB?: number;
  /**
   * Host the agent reaches the app at.
   * @default '127.0.0.1'
   */
  readonly host?: string;
  /**
   * HTTP path the agent probes on the app (`--health-path`).
   * @default - the agent probes with a TCP connect
   */
  readonly healthPath?: string;
  /**
   * How long the app may take to start before Kubernetes restarts the pod's containers.
   * @default 120
   */
  readonly startupTimeoutSeconds?: number;
}

/** The sessionfleet agent sidecar. */
export interface KubernetesAgentContainer {
  /**
   * Agent image, built from `agent/Dockerfile`.
   * @default 'ghcr.io/sessionfleet/agent:0.1.0' (`DEFAULT_AGENT_IMAGE`)
   */
  readonly image?: string;
  /**
   * CPU request, a Kubernetes quantity.
   * @default '250m'
   */
  readonly cpuRequest?: string;
  /**
   * CPU limit, a Kubernetes quantity.
   * @default '1'
   */
  readonly cpuLimit?: string;
  /**
   * Memory request, in MiB.
   * @default 256
   */
  readonly memoryRequestMiB?: number;
  /**
   * Memory limit, in MiB.
   * @default - the memory request
   */
  readonly memoryLimitMiB?: number;
  /**
   * The agent's log level (`--log-level`).
   * @default 'info'
   */
  readonly logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export interface ResolvedContainerResources {
  readonly cpuRequest: string;
  readonly cpuLimit: string;
  readonly memoryRequestMiB: number;
  readonly memoryLimitMiB: number;
}

export interface ResolvedAppContainer extends ResolvedContainerResources {
  readonly image: string;
  readonly port: number;
  readonly command?: readonly string[];
  readonly args?: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly secretEnv: Readonly<Record<string, KubernetesSecretKey>>;
  readonly host: string;
  readonly healthPath?: string;
  readonly startupTimeoutSeconds: number;
}

export interface ResolvedAgentContainer extends ResolvedContainerResources {
  readonly image: string;
  readonly logLevel: string;
}

/** How the agents reach Redis: a URL from a Secret, or an in-cluster Redis and its password Secret. */
export type AgentRedisConnection =
  | { readonly kind: 'url'; readonly urlSecret: KubernetesSecretKey }
  | {
      readonly kind: 'password';
      readonly host: string;
      readonly port: number;
      readonly passwordSecret: KubernetesSecretKey;
    }
  | { readonly kind: 'none' };

export interface FleetPodOptions {
  readonly policy: Policy;
  readonly policyConfigMapName: string;
  readonly app: ResolvedAppContainer;
  readonly agent: ResolvedAgentContainer;
  readonly storage: KubernetesSessionStorage;
  /** Name of the session-state claim for `shared-volume` storage. */
  readonly claimName?: string;
  readonly redis: AgentRedisConnection;
  readonly upstreamToken?: KubernetesSecretKey;
  readonly adminToken?: KubernetesSecretKey;
  readonly principals?: KubernetesSecretKey;
  readonly principalHeader?: string;
  readonly tenantHeader?: string;
  /** Under tenant isolation: the tenant these instances serve (the agent's `--tenant`). */
  readonly tenantId?: string;
  readonly preStopDelaySeconds: number;
  /** ServiceAccount whose token is mounted into the agent only (session recycling). */
  readonly recyclerServiceAccountName?: string;
}

export const APP_CONTAINER_NAME = 'app';
export const AGENT_CONTAINER_NAME = 'agent';
export const SESSION_STATE_VOLUME = 'session-state';
/** The uid and gid of the `node` user of the official Node.js images the agent image is built on. */
export const AGENT_UID = 1000;
/** Where Kubernetes clients look for the in-cluster service-account token. */
export const SERVICE_ACCOUNT_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';

const PROBE_PERIOD_SECONDS = 10;
const STARTUP_PROBE_PERIOD_SECONDS = 2;

/** The annotations Prometheus' Kubernetes service discovery conventionally reads. */
export function prometheusAnnotations(): Record<string, string> {
  return {
    'prometheus.io/scrape': 'true',
    'prometheus.io/port': String(AGENT_ADMIN_PORT),
    'prometheus.io/path': AGENT_METRICS_PATH,
  };
}

/** The pod spec every instance of a fleet (or of one tenant) runs. */
export function fleetPodSpec(options: FleetPodOptions): DeploymentV1SpecTemplateSpec {
  const { policy, app, agent } = options;
  const drain = policy.drainTimeoutSeconds;
  const volumes: DeploymentV1SpecTemplateSpecVolume[] = [
    {
      name: 'policy',
      configMap: {
        name: options.policyConfigMapName,
        items: [{ key: POLICY_FILE_NAME, path: POLICY_FILE_NAME }],
      },
    },
    // The agent's root filesystem is read-only; Node and pino may still want a scratch directory.
    { name: 'agent-tmp', emptyDir: { sizeLimit: '64Mi' } },
  ];
  const agentMounts: DeploymentV1SpecTemplateSpecContainerVolumeMount[] = [
    { name: 'policy', mountPath: POLICY_MOUNT_PATH, readOnly: true },
    { name: 'agent-tmp', mountPath: '/tmp' },
  ];

  const storage = options.storage;
  if (storage.kind === 'shared-volume' || storage.kind === 'existing-claim') {
    const claimName = storage.kind === 'existing-claim' ? storage.claimName : options.claimName;
    volumes.push({ name: SESSION_STATE_VOLUME, persistentVolumeClaim: { claimName: claimName ?? '' } });
  } else if (storage.kind === 'ephemeral') {
    volumes.push({
      name: SESSION_STATE_VOLUME,
      emptyDir: storage.sizeLimitMiB !== undefined ? { sizeLimit: mebibytes(storage.sizeLimitMiB) } : {},
    });
  }
  // per-instance-volume: the StatefulSet's volumeClaimTemplate provides the volume.

  if (options.principals) {
    volumes.push({
      name: 'principals',
      secret: {
        secretName: options.principals.secretName,
        items: [{ key: options.principals.key, path: PRINCIPALS_FILE_NAME }],
      },
    });
    agentMounts.push({ name: 'principals', mountPath: PRINCIPALS_MOUNT_PATH, readOnly: true });
  }

  if (options.recyclerServiceAccountName) {
    // The token is projected into the agent container alone: the app (which may run tools for its
    // users) never sees an API credential.
    volumes.push({
      name: 'agent-api-access',
      projected: [
        {
          sources: [
            { serviceAccountToken: { path: 'token', expirationSeconds: 3600 } },
            { configMap: [{ name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] }] },
            {
              downwardApi: {
                items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }],
              },
            },
          ],
        },
      ],
    });
    agentMounts.push({ name: 'agent-api-access', mountPath: SERVICE_ACCOUNT_TOKEN_PATH, readOnly: true });
  }

  const appContainer: DeploymentV1SpecTemplateSpecContainer = {
    name: APP_CONTAINER_NAME,
    image: app.image,
    ...(app.command ? { command: [...app.command] } : {}),
    ...(app.args ? { args: [...app.args] } : {}),
    env: appEnv(options),
    resources: resources(app),
    volumeMount: [{ name: SESSION_STATE_VOLUME, mountPath: storage.mountPath }],
    // The app's own health is what the agent's /healthz reports (it fails once the app stops
    // answering the agent's probes), so a hung app is restarted even though it only listens on
    // loopback, where the kubelet cannot reach it.
    startupProbe: agentHttpProbe(AGENT_HEALTH_PATH, STARTUP_PROBE_PERIOD_SECONDS, startupFailures(app)),
    livenessProbe: agentHttpProbe(AGENT_HEALTH_PATH, PROBE_PERIOD_SECONDS, 3),
    // The app keeps serving until the agent has stopped taking traffic and drained: its SIGTERM
    // waits for the agent's preStop delay plus the drain timeout.
    ...sleepBeforeStop(plus(options.preStopDelaySeconds, drain)),
    securityContext: { allowPrivilegeEscalation: false },
  };

  const agentContainer: DeploymentV1SpecTemplateSpecContainer = {
    name: AGENT_CONTAINER_NAME,
    image: agent.image,
    args: agentArgs({
      policy,
      appPort: app.port,
      appHost: app.host,
      principals: options.principals !== undefined,
      ...(options.principalHeader !== undefined ? { principalHeader: options.principalHeader } : {}),
      ...(options.tenantHeader !== undefined ? { tenantHeader: options.tenantHeader } : {}),
      ...(app.healthPath !== undefined ? { appHealthPath: app.healthPath } : {}),
    }),
    port: [
      { name: 'agent', containerPort: AGENT_CLIENT_PORT, protocol: 'TCP' },
      { name: 'admin', containerPort: AGENT_ADMIN_PORT, protocol: 'TCP' },
    ],
    env: agentEnv(options),
    resources: resources(agent),
    volumeMount: agentMounts,
    startupProbe: agentHttpProbe(AGENT_HEALTH_PATH, STARTUP_PROBE_PERIOD_SECONDS, startupFailures(app)),
    livenessProbe: agentHttpProbe(AGENT_HEALTH_PATH, PROBE_PERIOD_SECONDS, 3),
    readinessProbe: agentHttpProbe(AGENT_READY_PATH, 5, 2),
    // Endpoints are removed from the Service asynchronously; keep taking requests for a moment
    // before SIGTERM starts the drain.
    ...sleepBeforeStop(options.preStopDelaySeconds),
    securityContext: {
      runAsNonRoot: true,
      runAsUser: String(AGENT_UID),
      runAsGroup: String(AGENT_UID),
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    },
  };

  return {
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    restartPolicy: 'Always',
    ...(options.recyclerServiceAccountName ? { serviceAccountName: options.recyclerServiceAccountName } : {}),
    // The kubelet's deadline covers the preStop delay, the drain and the agent's own margin to exit.
    terminationGracePeriodSeconds: plus(
      plus(options.preStopDelaySeconds, drain),
      terminationGracePeriodSeconds({ ...policy, drainTimeoutSeconds: 0 }),
    ),
    securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
    container: [appContainer, agentContainer],
    volume: volumes,
  };
}

function appEnv(options: FleetPodOptions): DeploymentV1SpecTemplateSpecContainerEnv[] {
  const env: DeploymentV1SpecTemplateSpecContainerEnv[] = Object.entries(options.app.env).map(([name, value]) => ({
    name,
    value,
  }));
  for (const [name, ref] of Object.entries(options.app.secretEnv)) env.push(secretEnv(name, ref));
  // A Copilot CLI started with COPILOT_CONNECTION_TOKEN accepts only clients that present it: the agent.
  if (options.upstreamToken) env.push(secretEnv('COPILOT_CONNECTION_TOKEN', options.upstreamToken));
  return env;
}

function agentEnv(options: FleetPodOptions): DeploymentV1SpecTemplateSpecContainerEnv[] {
  // Order matters: Kubernetes expands $(VAR) only from variables defined earlier in the list.
  const env: DeploymentV1SpecTemplateSpecContainerEnv[] = [
    { name: 'POD_IP', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'status.podIP' } } },
    { name: AGENT_ENV.instanceId, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
    { name: AGENT_ENV.advertise, value: `http://$(POD_IP):${AGENT_CLIENT_PORT}` },
  ];
  // Tenant isolation: the agent serves this tenant alone (and refuses to start without it).
  if (options.tenantId !== undefined) env.push({ name: AGENT_ENV.tenant, value: options.tenantId });
  const redis = options.redis;
  if (redis.kind === 'url') {
    env.push(secretEnv(AGENT_ENV.redis, redis.urlSecret));
  } else if (redis.kind === 'password') {
    env.push(secretEnv('REDIS_PASSWORD', redis.passwordSecret));
    env.push({ name: AGENT_ENV.redis, value: `redis://:$(REDIS_PASSWORD)@${redis.host}:${redis.port}` });
  }
  if (options.upstreamToken) env.push(secretEnv(AGENT_ENV.upstreamToken, options.upstreamToken));
  if (options.adminToken) env.push(secretEnv(AGENT_ENV.adminToken, options.adminToken));
  env.push({ name: AGENT_ENV.logLevel, value: options.agent.logLevel });
  return env;
}

function secretEnv(name: string, ref: KubernetesSecretKey): DeploymentV1SpecTemplateSpecContainerEnv {
  return { name, valueFrom: { secretKeyRef: { name: ref.secretName, key: ref.key } } };
}

function resources(r: ResolvedContainerResources) {
  return {
    requests: { cpu: r.cpuRequest, memory: mebibytes(r.memoryRequestMiB) },
    limits: { cpu: r.cpuLimit, memory: mebibytes(r.memoryLimitMiB) },
  };
}

function agentHttpProbe(path: string, periodSeconds: number, failureThreshold: number) {
  return {
    httpGet: { path, port: String(AGENT_ADMIN_PORT) },
    periodSeconds,
    timeoutSeconds: 2,
    failureThreshold,
  };
}

function startupFailures(app: ResolvedAppContainer): number {
  const timeout = app.startupTimeoutSeconds;
  if (Token.isUnresolved(timeout)) return Token.asNumber(Fn.ceil(Op.div(timeout, STARTUP_PROBE_PERIOD_SECONDS)));
  return Math.max(1, Math.ceil(timeout / STARTUP_PROBE_PERIOD_SECONDS));
}

function sleepBeforeStop(seconds: number) {
  if (!Token.isUnresolved(seconds) && seconds <= 0) return {};
  return {
    lifecycle: {
      preStop: [
        { exec: { command: ['sleep', Token.isUnresolved(seconds) ? Token.asString(seconds) : String(seconds)] } },
      ],
    },
  };
}

/** a + b, also when either is only known at apply time. */
export function plus(a: number, b: number): number {
  if (Token.isUnresolved(a) || Token.isUnresolved(b)) return Token.asNumber(Fn.sum([a, b]));
  return a + b;
}
