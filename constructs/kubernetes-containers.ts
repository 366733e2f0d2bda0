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
  AGENT_PATHS,
  AGENT_SERVING_PATH,
  POLICY_FILE_NAME,
  POLICY_MOUNT_PATH,
  PRINCIPALS_FILE_NAME,
  PRINCIPALS_MOUNT_PATH,
} from '../policy/agent-interface.js';
import type { Policy } from '../policy/index.js';
import {
  AGENT_APP_STATE_PATH,
  AGENT_SHARED_STATE_PATH,
  agentArgs,
  stagesSessionState,
  terminationGracePeriodSeconds,
} from './agent-container.js';
import type { FleetJwt } from './fleet-jwt.js';
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
   * How long the app may take to answer the agent's first probe before Kubernetes restarts the
   * app container. The app's startup probe asks the agent's `/startupz`, which fails until the app
   * has answered once (no grace period), so the whole timeout applies.
   * @default 120
   */
  readonly startupTimeoutSeconds?: number;
  /**
   * The app container's security context. By default the app runs under the Pod Security
   * Standards "restricted" profile: `runAsNonRoot`, every capability dropped, no privilege
   * escalation, the runtime's default seccomp profile. Loosen it here when the image needs it (an
   * image whose user is root or a name rather than a uid needs `runAsUser`, or `runAsNonRoot: false`).
   * @see https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted
   * @default - the restricted profile, with a writable root filesystem
   */
  readonly securityContext?: KubernetesSecurityContext;
  /**
   * Whether the app keeps running until the agent has drained, by a `preStop` hook that runs
   * `sleep` in the app container. The image must then have a `sleep` binary on its PATH
   * (distroless and scratch images do not): without one the hook fails, Kubernetes logs a
   * FailedPreStopHook event and stops the app at once. Set false for such images; the app then
   * gets SIGTERM while the agent still drains into it.
   * @default true
   */
  readonly waitForDrain?: boolean;
}

/**
 * A container's security context, typed: the way out of the restricted defaults.
 * @see https://kubernetes.io/docs/tasks/configure-pod-container/security-context/
 */
export interface KubernetesSecurityContext {
  /**
   * Refuse to start the container as root (uid 0). The kubelet checks the image's user, which
   * must then be numeric, or `runAsUser`.
   * @default true
   */
  readonly runAsNonRoot?: boolean;
  /**
   * The uid the container runs as.
   * @default - the image's user
   */
  readonly runAsUser?: number;
  /**
   * The primary gid of the container's processes.
   * @default - the image's group
   */
  readonly runAsGroup?: number;
  /**
   * Mount the container's root filesystem read-only (session state and the mounts stay writable).
   * @default false
   */
  readonly readOnlyRootFilesystem?: boolean;
  /**
   * Let a process gain more privileges than its parent (setuid binaries).
   * @default false
   */
  readonly allowPrivilegeEscalation?: boolean;
  /**
   * Capabilities added back after every one is dropped. The restricted profile allows only
   * `NET_BIND_SERVICE`.
   * @default - none
   */
  readonly addCapabilities?: readonly string[];
  /**
   * The seccomp profile.
   * @default 'RuntimeDefault'
   */
  readonly seccompProfile?: 'RuntimeDefault' | 'Unconfined';
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
  readonly securityContext: Required<Omit<KubernetesSecurityContext, 'runAsUser' | 'runAsGroup'>> &
    Pick<KubernetesSecurityContext, 'runAsUser' | 'runAsGroup'>;
  readonly waitForDrain: boolean;
}

/** The app's security context with the restricted profile's values where the user set nothing. */
export function resolveAppSecurityContext(
  given: KubernetesSecurityContext = {},
): ResolvedAppContainer['securityContext'] {
  return {
    runAsNonRoot: given.runAsNonRoot ?? true,
    ...(given.runAsUser !== undefined ? { runAsUser: given.runAsUser } : {}),
    ...(given.runAsGroup !== undefined ? { runAsGroup: given.runAsGroup } : {}),
    readOnlyRootFilesystem: given.readOnlyRootFilesystem ?? false,
    allowPrivilegeEscalation: given.allowPrivilegeEscalation ?? false,
    addCapabilities: given.addCapabilities ?? [],
    seccompProfile: given.seccompProfile ?? 'RuntimeDefault',
  };
}

export interface ResolvedAgentContainer extends ResolvedContainerResources {
  readonly image: string;
  readonly logLevel: string;
}

/** How the agents reach Redis: a URL from a Secret, or an in-cluster Redis and its password Secret. */
export type AgentRedisConnection =
  | { readonly kind: 'url'; readonly urlSecret: KubernetesSecretKey }
  /** A connection string that may name `$(REDIS_PASSWORD)`, which the pod takes from the Secret. */
  | { readonly kind: 'template'; readonly url: string; readonly passwordSecret?: KubernetesSecretKey }
  | { readonly kind: 'none' };

export interface FleetPodOptions {
  readonly policy: Policy;
  readonly policyConfigMapName: string;
  /** The agents' `--fleet`. */
  readonly fleetName: string;
  /** CIDRs the agent accepts the principal header from (`--trusted-proxies`). */
  readonly trustedProxyCidrs?: readonly string[];
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
  readonly jwt?: FleetJwt;
  /** Under tenant isolation: the tenant these instances serve (the agent's `--tenant`). */
  readonly tenantId?: string;
  readonly preStopDelaySeconds: number;
  /** ServiceAccount whose token is mounted into the agent only (session recycling). */
  readonly recyclerServiceAccountName?: string;
}

export const APP_CONTAINER_NAME = 'app';
export const AGENT_CONTAINER_NAME = 'agent';
export const SESSION_STATE_VOLUME = 'session-state';
/** The app's private session state when the agent stages it (ADR 0019): an emptyDir of the pod. */
export const APP_STATE_VOLUME = 'app-session-state';

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
  // Shared state: the agent removes sessions past their TTL from the same volume (--session-state-dir).
  const sharedState = storage.kind === 'shared-volume' || storage.kind === 'existing-claim';
  // In front of the Copilot CLI the shared volume is the agent's alone: the app gets a private
  // volume, into which the agent stages the sessions it serves (ADR 0019).
  const staged = stagesSessionState(policy, sharedState);
  const appMounts: DeploymentV1SpecTemplateSpecContainerVolumeMount[] = [];
  if (staged) {
    volumes.push({ name: APP_STATE_VOLUME, emptyDir: {} });
    agentMounts.push(
      { name: SESSION_STATE_VOLUME, mountPath: AGENT_SHARED_STATE_PATH },
      { name: APP_STATE_VOLUME, mountPath: AGENT_APP_STATE_PATH },
    );
    appMounts.push({ name: APP_STATE_VOLUME, mountPath: storage.mountPath });
  } else {
    if (sharedState) agentMounts.push({ name: SESSION_STATE_VOLUME, mountPath: storage.mountPath });
    appMounts.push({ name: SESSION_STATE_VOLUME, mountPath: storage.mountPath });
  }

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
    volumeMount: appMounts,
    // The app listens on loopback, where the kubelet cannot reach it: its probes ask the agent.
    // /startupz fails until the app has answered once, so startupTimeoutSeconds is the whole
    // start-up budget; /healthz fails once the started app stops answering, and restarts the app
    // container alone (the agent, with its clients' connections, has its own /livez).
    startupProbe: agentHttpProbe(AGENT_PATHS.startup, STARTUP_PROBE_PERIOD_SECONDS, startupFailures(app)),
    livenessProbe: agentHttpProbe(AGENT_HEALTH_PATH, PROBE_PERIOD_SECONDS, 3),
    // The app keeps serving until the agent has stopped taking traffic and drained: its SIGTERM
    // waits for the agent's preStop delay plus the drain timeout (needs `sleep` in the app image).
    ...(app.waitForDrain ? sleepBeforeStop(plus(options.preStopDelaySeconds, drain)) : {}),
    securityContext: appSecurityContext(app.securityContext),
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
      ...(options.jwt !== undefined ? { jwt: options.jwt } : {}),
      ...(app.healthPath !== undefined ? { appHealthPath: app.healthPath } : {}),
      // --fleet names the agents' share of Redis; without Redis it means nothing.
      ...(options.redis.kind !== 'none' ? { fleetName: options.fleetName } : {}),
      // In JWT mode the token names the caller: the CIDRs stay the NetworkPolicy's, not the agent's.
      ...(options.trustedProxyCidrs !== undefined && options.jwt === undefined
        ? { trustedProxies: options.trustedProxyCidrs }
        : {}),
      ...(staged
        ? { sessionStateDir: AGENT_SHARED_STATE_PATH, appStateDir: AGENT_APP_STATE_PATH }
        : sharedState
          ? { sessionStateDir: storage.mountPath }
          : {}),
    }),
    port: [
      { name: 'agent', containerPort: AGENT_CLIENT_PORT, protocol: 'TCP' },
      { name: 'admin', containerPort: AGENT_ADMIN_PORT, protocol: 'TCP' },
    ],
    env: agentEnv(options),
    resources: resources(agent),
    volumeMount: agentMounts,
    // The agent's own liveness: a slow or hung app never restarts the agent.
    startupProbe: agentHttpProbe(AGENT_PATHS.live, STARTUP_PROBE_PERIOD_SECONDS, 15),
    livenessProbe: agentHttpProbe(AGENT_PATHS.live, PROBE_PERIOD_SECONDS, 3),
    // The Service's readiness: fails only while the agent drains (ADR 0018). A full instance, a
    // Redis outage or a dead app (the agent places new sessions on peers) keep the pod in the
    // Service, so the sessions it holds stay reachable; `/readyz` reports those (new sessions).
    readinessProbe: agentHttpProbe(AGENT_SERVING_PATH, 5, 2),
    // Endpoints are removed from the Service asynchronously; keep taking requests for a moment
    // before SIGTERM starts the drain (`sleep` is in the agent image).
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
    securityContext: {
      seccompProfile: { type: 'RuntimeDefault' },
      // Shared session state: files the app writes get the agent's group, so the agent can clean up
      // stale sessions (and, staged, read and remove the app's copies); OnRootMismatch spares a
      // large volume a recursive chown on every mount.
      ...(sharedState ? { fsGroup: String(AGENT_UID), fsGroupChangePolicy: 'OnRootMismatch' } : {}),
    },
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
  } else if (redis.kind === 'template') {
    if (redis.passwordSecret) env.push(secretEnv('REDIS_PASSWORD', redis.passwordSecret));
    env.push({ name: AGENT_ENV.redis, value: redis.url });
  }
  if (options.upstreamToken) env.push(secretEnv(AGENT_ENV.upstreamToken, options.upstreamToken));
  if (options.adminToken) env.push(secretEnv(AGENT_ENV.adminToken, options.adminToken));
  env.push({ name: AGENT_ENV.logLevel, value: options.agent.logLevel });
  return env;
}

function appSecurityContext(context: ResolvedAppContainer['securityContext']) {
  return {
    runAsNonRoot: context.runAsNonRoot,
    ...(context.runAsUser !== undefined ? { runAsUser: String(context.runAsUser) } : {}),
    ...(context.runAsGroup !== undefined ? { runAsGroup: String(context.runAsGroup) } : {}),
    readOnlyRootFilesystem: context.readOnlyRootFilesystem,
    allowPrivilegeEscalation: context.allowPrivilegeEscalation,
    capabilities: {
      drop: ['ALL'],
      ...(context.addCapabilities.length > 0 ? { add: [...context.addCapabilities] } : {}),
    },
    seccompProfile: { type: context.seccompProfile },
  };
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
