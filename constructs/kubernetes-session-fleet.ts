/**
 * `KubernetesSessionFleet`: a fleet of session-holding servers on Kubernetes, each pod running the
 * app beside the sessionfleet agent, with the policy validated at synth time by the shared model
 * and everything of the production checklist (SPEC.md §5) synthesized: session-state storage,
 * secrets by reference, probes, draining, autoscaling on session utilization, metrics, a
 * disruption budget, NetworkPolicies and the Redis the agents coordinate through.
 *
 * @see https://kubernetes.io/docs/concepts/workloads/controllers/deployment/
 */
import { createHash } from 'node:crypto';
import { ConfigMapV1 } from '@cdktf/provider-kubernetes/lib/config-map-v1/index.js';
import { Annotations, Fn } from 'cdktf';
import { Construct } from 'constructs';
import { AGENT_ADMIN_PORT, AGENT_CLIENT_PORT, POLICY_FILE_NAME } from '../policy/agent-interface.js';
import { DEFAULTS, type Policy, parseCpuQuantity } from '../policy/index.js';
import {
  DEFAULT_AGENT_IMAGE,
  FLEET_NAME_PATTERN,
  FLEET_NAME_RULE,
  fleetNameFromPath,
  policyFileContent,
} from './agent-container.js';
import { warnAboutAgentImage } from './agent-image.js';
import { fleetJwtProblems } from './fleet-jwt.js';
import { resolveFleetPolicy, SessionFleetValidationError } from './fleet-policy.js';
import { identityHeaderProblems } from './identity-headers.js';
import {
  type ResolvedAgentContainer,
  type ResolvedAppContainer,
  resolveAppSecurityContext,
} from './kubernetes-containers.js';
import {
  KubernetesFleetInstances,
  type KubernetesScaleMetric,
  type KubernetesServiceType,
  TENANT_LABEL,
} from './kubernetes-fleet-instances.js';
import {
  checkEnv,
  checkRedis,
  checkResources,
  checkSecurityContext,
  checkStorage,
  checkTrustedProxies,
  isRestricted,
} from './kubernetes-prop-checks.js';
import { KubernetesFleetRedis } from './kubernetes-redis.js';
import type { KubernetesSessionFleetProps, KubernetesTenantOptions } from './kubernetes-session-fleet-props.js';
import { describeStorage, isSharedStorage, KubernetesSessionStorage } from './kubernetes-session-storage.js';
import {
  checkSecretKey,
  checkWholeNumber,
  isDns1035Label,
  isDns1123Label,
  isLabelKey,
  isLabelValue,
  isToken,
  kebabCase,
  Problems,
  RULES,
} from './kubernetes-validation.js';

export type {
  KubernetesAgentContainer,
  KubernetesAppContainer,
  KubernetesSecurityContext,
} from './kubernetes-containers.js';
export {
  KubernetesFleetInstances,
  type KubernetesScaleMetric,
  type KubernetesServiceType,
  PLACEMENT_DEMAND_METRIC,
  SESSION_UTILIZATION_METRIC,
  TENANT_LABEL,
} from './kubernetes-fleet-instances.js';
export {
  DEFAULT_REDIS_IMAGE,
  KubernetesFleetRedis,
  type KubernetesInClusterRedisOptions,
  KubernetesRedis,
  type KubernetesRedisClusterOptions,
  type KubernetesRedisSentinelOptions,
} from './kubernetes-redis.js';
export type {
  KubernetesSessionFleetProps,
  KubernetesTenant,
  KubernetesTenantOptions,
} from './kubernetes-session-fleet-props.js';
export {
  type KubernetesAccessMode,
  type KubernetesEphemeralOptions,
  type KubernetesExistingClaimOptions,
  type KubernetesPerInstanceVolumeOptions,
  KubernetesSessionStorage,
  type KubernetesSharedVolumeOptions,
  type KubernetesVolumeOptions,
} from './kubernetes-session-storage.js';
export {
  KubernetesTrustedProxies,
  type KubernetesTrustedProxiesOptions,
} from './kubernetes-trusted-proxies.js';
export type { KubernetesSecretKey } from './kubernetes-validation.js';

/** The longest fleet name and tenant id: every derived name then fits Kubernetes' 63-character limits. */
export const MAX_FLEET_NAME_LENGTH = 24;
export const MAX_TENANT_ID_LENGTH = 24;

/** Labels the construct sets itself; they select the fleet's pods. */
const RESERVED_LABELS = [
  'app.kubernetes.io/name',
  'app.kubernetes.io/instance',
  'app.kubernetes.io/component',
  TENANT_LABEL,
] as const;
const SCALE_METRICS: readonly KubernetesScaleMetric[] = ['sessions', 'cpu'];
const SERVICE_TYPES: readonly KubernetesServiceType[] = ['ClusterIP', 'NodePort', 'LoadBalancer'];
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export class KubernetesSessionFleet extends Construct {
  /** The validated policy with every default filled in: what the agents run with. */
  public readonly policy: Policy;
  /** Warnings of the policy model (e.g. a setting the isolation mode overrides). */
  public readonly policyWarnings: readonly string[];
  public readonly name: string;
  /** The agents' `--fleet` (tenants append `-<tenantId>`). */
  public readonly fleetName: string;
  public readonly namespace: string;
  public readonly labels: Readonly<Record<string, string>>;
  public readonly storage: KubernetesSessionStorage;
  public readonly redis: KubernetesFleetRedis;
  public readonly app: ResolvedAppContainer;
  public readonly agent: ResolvedAgentContainer;
  public readonly scaleOn: KubernetesScaleMetric;
  public readonly targetSessionUtilization: number;
  public readonly targetCpuUtilizationPercent: number;
  public readonly serviceType: KubernetesServiceType;
  public readonly metricsScrapeNamespaces: readonly string[];
  public readonly preStopDelaySeconds: number;
  /** The ConfigMap holding the policy file every agent mounts. */
  public readonly policyConfigMap: ConfigMapV1;
  /** The fleet's instances; undefined under tenant isolation, where each tenant has its own. */
  public readonly instances?: KubernetesFleetInstances;

  private readonly props: KubernetesSessionFleetProps;
  private readonly policyChecksum: string;
  private readonly tenantInstances: KubernetesFleetInstances[] = [];
  private tenantScope?: Construct;

  constructor(scope: Construct, id: string, props: KubernetesSessionFleetProps) {
    super(scope, id);
    this.props = props;
    const policyInput = props.policy;
    const isolation = isToken(policyInput.isolation) ? undefined : (policyInput.isolation ?? 'shared');

    this.name = props.name ?? kebabCase(id);
    this.fleetName = props.fleetName ?? fleetNameFromPath(this);
    this.namespace = props.namespace ?? 'default';
    this.labels = props.labels ?? {};
    const recycle = props.recycleAfterSession ?? policyInput.recycleAfterSession ?? false;
    this.storage =
      props.storage ??
      (recycle === true ? KubernetesSessionStorage.ephemeral() : KubernetesSessionStorage.sharedVolume());
    const isolationNeedsCpu = isolation === 'session' || isolation === 'request';
    const appCpuRequest = props.app.cpuRequest ?? props.app.cpuLimit ?? (isolationNeedsCpu ? '2' : '1');
    const appMemoryRequestMiB = props.app.memoryRequestMiB ?? 1024;
    this.app = {
      image: props.app.image,
      port: props.app.port,
      ...(props.app.command !== undefined ? { command: props.app.command } : {}),
      ...(props.app.args !== undefined ? { args: props.app.args } : {}),
      env: props.app.env ?? {},
      secretEnv: props.app.secretEnv ?? {},
      cpuRequest: appCpuRequest,
      cpuLimit: props.app.cpuLimit ?? appCpuRequest,
      memoryRequestMiB: appMemoryRequestMiB,
      memoryLimitMiB: props.app.memoryLimitMiB ?? appMemoryRequestMiB,
      host: props.app.host ?? '127.0.0.1',
      ...(props.app.healthPath !== undefined ? { healthPath: props.app.healthPath } : {}),
      startupTimeoutSeconds: props.app.startupTimeoutSeconds ?? 120,
      securityContext: resolveAppSecurityContext(props.app.securityContext),
      waitForDrain: props.app.waitForDrain ?? true,
    };
    const agentMemoryRequestMiB = props.agent?.memoryRequestMiB ?? 256;
    this.agent = {
      image: props.agent?.image ?? DEFAULT_AGENT_IMAGE,
      cpuRequest: props.agent?.cpuRequest ?? '250m',
      cpuLimit: props.agent?.cpuLimit ?? '1',
      memoryRequestMiB: agentMemoryRequestMiB,
      memoryLimitMiB: props.agent?.memoryLimitMiB ?? agentMemoryRequestMiB,
      logLevel: props.agent?.logLevel ?? 'info',
    };
    warnAboutAgentImage(this, this.agent.image);
    this.scaleOn = props.scaleOn ?? 'sessions';
    this.targetSessionUtilization = props.targetSessionUtilization ?? 0.8;
    this.targetCpuUtilizationPercent = props.targetCpuUtilizationPercent ?? 70;
    this.serviceType = props.serviceType ?? 'ClusterIP';
    this.metricsScrapeNamespaces = props.metricsScrapeNamespaces ?? [];
    this.preStopDelaySeconds = props.preStopDelaySeconds ?? 5;

    // Validation: every prop first, then the policy with the shared model; all reported at once.
    const problems = new Problems();
    this.checkProps(problems, recycle);
    const maxInstances = isToken(policyInput.maxInstances)
      ? undefined
      : (policyInput.maxInstances ?? DEFAULTS.maxInstances);
    const redisChoice =
      props.redis ?? (maxInstances === 1 ? KubernetesFleetRedis.none() : KubernetesFleetRedis.inCluster());
    this.redis = redisChoice;
    checkRedis(problems, 'redis', redisChoice, maxInstances);
    checkStorage(problems, 'storage', this.storage, maxInstances);

    const sharedState = isSharedStorage(this.storage);
    if (policyInput.sharedSessionState === true && !sharedState) {
      problems.addShown(
        'policy.sharedSessionState',
        'true',
        `needs storage every instance mounts (storage is ${describeStorage(this.storage)}): use KubernetesSessionStorage.sharedVolume() or existingClaim() with accessMode "ReadWriteMany"`,
      );
    }
    if (
      props.recycleAfterSession !== undefined &&
      policyInput.recycleAfterSession !== undefined &&
      !isToken(policyInput.recycleAfterSession) &&
      props.recycleAfterSession !== policyInput.recycleAfterSession
    ) {
      problems.add(
        'recycleAfterSession',
        props.recycleAfterSession,
        `contradicts 'policy.recycleAfterSession' (${policyInput.recycleAfterSession}): set it in one place`,
      );
    }

    const cpuForPolicy = parseCpuQuantity(this.app.cpuRequest) !== undefined ? this.app.cpuRequest : undefined;
    let resolved: ReturnType<typeof resolveFleetPolicy> | undefined;
    try {
      resolved = resolveFleetPolicy(
        this,
        {
          ...policyInput,
          recycleAfterSession: recycle,
          sharedSessionState: policyInput.sharedSessionState ?? sharedState,
        },
        cpuForPolicy !== undefined && !isToken(cpuForPolicy) ? { instanceCpu: cpuForPolicy } : {},
      );
    } catch (error) {
      if (!(error instanceof SessionFleetValidationError)) throw error;
      problems.list.push(...error.problems.map((p) => this.nameTheProp(p, recycle)));
    }
    if (!problems.empty || !resolved) throw new SessionFleetValidationError(this, problems.list);
    this.policy = resolved.policy;
    this.policyWarnings = resolved.warnings;
    for (const warning of resolved.warnings) Annotations.of(this).addWarning(`policy: ${warning}`);
    if (!isRestricted(this.app.securityContext)) {
      Annotations.of(this).addWarning(
        '\'app.securityContext\' leaves the Pod Security Standards "restricted" profile: a namespace that enforces it refuses these pods',
      );
    }

    const content = hasUnresolvedValue(this.policy) ? Fn.jsonencode(this.policy) : policyFileContent(this.policy);
    this.policyChecksum = isToken(content) ? Fn.sha256(content) : createHash('sha256').update(content).digest('hex');
    this.policyConfigMap = new ConfigMapV1(this, 'PolicyConfigMap', {
      metadata: {
        name: `${this.name}-policy`,
        namespace: this.namespace,
        labels: this.commonLabels(),
      },
      data: { [POLICY_FILE_NAME]: content },
    });

    if (this.policy.isolation === 'tenant') {
      (props.tenants ?? []).forEach((tenant, index) => {
        const { tenantId, ...options } = tenant;
        this.createTenant(tenantId, options, `tenants[${index}].`);
      });
    } else {
      this.instances = new KubernetesFleetInstances(this, 'Instances', {
        ...this.instanceSettings(undefined, {}),
        name: this.name,
      });
    }
  }

  /** Under tenant isolation: every tenant's instances, in the order they were added. */
  get tenants(): readonly KubernetesFleetInstances[] {
    return [...this.tenantInstances];
  }

  /**
   * Adds a tenant (tenant isolation only): its own Deployment, Service, storage, Redis and Secret
   * references, unreachable from other tenants' pods.
   * @returns the tenant's instances
   */
  addTenant(tenantId: string, options: KubernetesTenantOptions = {}): KubernetesFleetInstances {
    return this.createTenant(tenantId, options, '');
  }

  private createTenant(tenantId: string, options: KubernetesTenantOptions, prefix: string): KubernetesFleetInstances {
    const problems = new Problems();
    if (this.policy.isolation !== 'tenant') {
      problems.addSentence(
        `addTenant(${JSON.stringify(tenantId)}) needs 'policy.isolation' "tenant" (it is ${JSON.stringify(this.policy.isolation)})`,
      );
      throw new SessionFleetValidationError(this, problems.list);
    }
    if (isToken(tenantId) || !isDns1123Label(tenantId, MAX_TENANT_ID_LENGTH)) {
      problems.add(`${prefix}tenantId`, tenantId, RULES.dns1123Label(MAX_TENANT_ID_LENGTH));
    } else if (this.tenantInstances.some((t) => t.tenantId === tenantId)) {
      problems.add(`${prefix}tenantId`, tenantId, 'is already a tenant of this fleet');
    }
    const maxInstances = isToken(this.policy.maxInstances) ? undefined : this.policy.maxInstances;
    const storage = options.storage ?? this.storage;
    if (options.storage !== undefined) {
      checkStorage(problems, `${prefix}storage`, options.storage, maxInstances);
    } else if (storage.kind === 'existing-claim') {
      problems.addShown(
        'storage',
        describeStorage(storage),
        `would be shared by every tenant: give tenant ${JSON.stringify(tenantId)} its own '${prefix}storage'`,
      );
    }
    if (
      options.storage !== undefined &&
      problems.empty &&
      this.policy.sharedSessionState === true &&
      !isSharedStorage(options.storage)
    ) {
      problems.addShown(
        `${prefix}storage`,
        describeStorage(options.storage),
        "is not mounted by every instance, but 'policy.sharedSessionState' is true for every tenant (they share one policy file): give every tenant storage that is",
      );
    }
    const redis = options.redis ?? this.redis;
    if (
      options.redis === undefined &&
      (redis.kind === 'external' || redis.kind === 'sentinel' || redis.kind === 'cluster')
    ) {
      problems.addShown(
        'redis',
        redis.kind,
        `would be shared by every tenant, whose agents would then coordinate as one fleet: give tenant ${JSON.stringify(tenantId)} its own '${prefix}redis'`,
      );
    } else if (options.redis) {
      checkRedis(problems, `${prefix}redis`, options.redis, maxInstances);
    }
    if (options.principals === undefined && this.props.principals !== undefined) {
      problems.add(
        'principals',
        this.props.principals.secretName,
        `would let every tenant's clients into every tenant's instances: give tenant ${JSON.stringify(tenantId)} its own '${prefix}principals'`,
      );
    }
    if (options.principals) checkSecretKey(problems, `${prefix}principals`, options.principals);
    checkEnv(problems, prefix, options.env ?? {}, options.secretEnv ?? {}, this.props.upstreamToken !== undefined);
    if (!problems.empty) throw new SessionFleetValidationError(this, problems.list);

    this.tenantScope ??= new Construct(this, 'Tenants');
    // The tenant id is the construct id: it is the tenant's stable identity (checked to be a DNS
    // label, never a token), and every Kubernetes name of the tenant derives from it anyway.
    const instances = new KubernetesFleetInstances(this.tenantScope, tenantId, {
      ...this.instanceSettings(tenantId, options),
      name: `${this.name}-${tenantId}`,
      fleetName: `${this.fleetName}-${tenantId}`,
      storage,
      redis,
    });
    this.tenantInstances.push(instances);
    return instances;
  }

  private commonLabels(): Record<string, string> {
    return {
      ...this.labels,
      'app.kubernetes.io/name': 'sessionfleet',
      'app.kubernetes.io/instance': this.name,
    };
  }

  private instanceSettings(tenantId: string | undefined, options: KubernetesTenantOptions) {
    const tenantLabel: Record<string, string> = tenantId === undefined ? {} : { [TENANT_LABEL]: tenantId };
    const selector = (component: string) => ({
      'app.kubernetes.io/name': 'sessionfleet',
      'app.kubernetes.io/instance': this.name,
      'app.kubernetes.io/component': component,
      ...tenantLabel,
    });
    const selectorLabels = selector('instance');
    const principals = options.principals ?? this.props.principals;
    return {
      namespace: this.namespace,
      labels: { ...this.commonLabels(), ...selectorLabels },
      selectorLabels,
      redisSelectorLabels: selector('redis'),
      ...(tenantId !== undefined ? { tenantId } : {}),
      policy: this.policy,
      policyConfigMapName: this.policyConfigMap.metadata.name,
      fleetName: this.fleetName,
      ...(this.props.trustedProxies ? { trustedProxies: this.props.trustedProxies } : {}),
      recyclerAdmissionPolicy: this.props.recyclerAdmissionPolicy ?? true,
      policyChecksum: this.policyChecksum,
      // A tenant's variable replaces the fleet's of the same name, plain or secret.
      app: {
        ...this.app,
        env: { ...without(this.app.env, options.secretEnv), ...options.env },
        secretEnv: { ...without(this.app.secretEnv, options.env), ...options.secretEnv },
      },
      agent: this.agent,
      storage: this.storage,
      redis: this.redis,
      ...(this.props.upstreamToken ? { upstreamToken: this.props.upstreamToken } : {}),
      ...(this.props.adminToken ? { adminToken: this.props.adminToken } : {}),
      ...(principals ? { principals } : {}),
      ...(this.props.principalHeader !== undefined ? { principalHeader: this.props.principalHeader } : {}),
      ...(this.props.tenantHeader !== undefined ? { tenantHeader: this.props.tenantHeader } : {}),
      ...(this.props.jwt !== undefined ? { jwt: this.props.jwt } : {}),
      scaleOn: this.scaleOn,
      targetSessionUtilization: this.targetSessionUtilization,
      targetCpuUtilizationPercent: this.targetCpuUtilizationPercent,
      serviceType: this.serviceType,
      metricsScrapeNamespaces: this.metricsScrapeNamespaces,
      preStopDelaySeconds: this.preStopDelaySeconds,
    };
  }

  /**
   * The policy model names its own fields; where a construct prop supplied the value, name the prop:
   * the instance's vCPU comes from the app's CPU, `recycleAfterSession` may come from the prop.
   */
  private nameTheProp(problem: string, recycle: boolean): string {
    const vcpu = "'policy.instanceVcpu': ";
    if (problem.startsWith(vcpu) && this.props.policy.instanceVcpu === undefined) {
      const prop =
        this.props.app.cpuRequest === undefined && this.props.app.cpuLimit !== undefined ? 'cpuLimit' : 'cpuRequest';
      const value = prop === 'cpuLimit' ? this.app.cpuLimit : this.app.cpuRequest;
      return `'app.${prop}' (${JSON.stringify(value)}): ${problem.slice(vcpu.length)}`;
    }
    const recycleField = "'policy.recycleAfterSession'";
    if (
      problem.startsWith(recycleField) &&
      this.props.recycleAfterSession !== undefined &&
      this.props.policy.recycleAfterSession === undefined
    ) {
      return `'recycleAfterSession' (${recycle})${problem.slice(recycleField.length)}`;
    }
    return problem;
  }

  private checkProps(problems: Problems, recycle: boolean): void {
    const props = this.props;
    const isolation = isToken(props.policy.isolation) ? undefined : (props.policy.isolation ?? 'shared');
    if (!isToken(this.name) && !isDns1035Label(this.name, MAX_FLEET_NAME_LENGTH)) {
      problems.add(
        'name',
        this.name,
        props.name === undefined
          ? `is derived from the construct id and ${RULES.dns1035Label(MAX_FLEET_NAME_LENGTH)}: set 'name'`
          : RULES.dns1035Label(MAX_FLEET_NAME_LENGTH),
      );
    }
    if (!isToken(this.fleetName) && !FLEET_NAME_PATTERN.test(this.fleetName)) {
      problems.add('fleetName', this.fleetName, FLEET_NAME_RULE);
    } else if (
      !isToken(this.fleetName) &&
      isolation === 'tenant' &&
      this.fleetName.length > 64 - 1 - MAX_TENANT_ID_LENGTH
    ) {
      problems.add(
        'fleetName',
        this.fleetName,
        `must be at most ${64 - 1 - MAX_TENANT_ID_LENGTH} characters under tenant isolation: each tenant's agents get '<fleetName>-<tenantId>', at most 64`,
      );
    }
    if (!isToken(this.namespace) && !isDns1123Label(this.namespace)) {
      problems.add('namespace', this.namespace, RULES.dns1123Label(63));
    }
    for (const [key, value] of Object.entries(this.labels)) {
      if ((RESERVED_LABELS as readonly string[]).includes(key)) {
        problems.add(`labels.${key}`, value, "is set by the construct: it selects the fleet's pods");
      } else if (!isToken(key) && !isLabelKey(key)) {
        problems.add(
          'labels',
          key,
          "is not a label key: an optional DNS-subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.'",
        );
      } else if (!isToken(value) && !isLabelValue(value)) {
        problems.add(
          `labels.${key}`,
          value,
          "must be a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        );
      }
    }

    const app = props.app;
    if (!isToken(app.image) && app.image.trim() === '') problems.add('app.image', app.image, 'must not be empty');
    if (!isToken(app.port)) {
      if (!Number.isInteger(app.port) || app.port < 1 || app.port > 65535) {
        problems.add('app.port', app.port, 'must be a whole number between 1 and 65535');
      } else if (app.port === AGENT_CLIENT_PORT || app.port === AGENT_ADMIN_PORT) {
        problems.add(
          'app.port',
          app.port,
          `is the agent's: the pod's containers share one network, and ${AGENT_CLIENT_PORT} and ${AGENT_ADMIN_PORT} belong to the agent`,
        );
      }
    }
    if (app.host !== undefined && !isToken(app.host) && app.host.trim() === '') {
      problems.add('app.host', app.host, 'must not be empty');
    }
    if (app.healthPath !== undefined && !isToken(app.healthPath) && !app.healthPath.startsWith('/')) {
      problems.add('app.healthPath', app.healthPath, 'must start with /');
    }
    checkWholeNumber(problems, 'app.startupTimeoutSeconds', this.app.startupTimeoutSeconds, 1, 3600);
    checkEnv(problems, 'app.', this.app.env, this.app.secretEnv, props.upstreamToken !== undefined);
    checkResources(problems, 'app', this.app, props.app);
    checkResources(problems, 'agent', this.agent, props.agent ?? {});
    if (!isToken(this.agent.image) && this.agent.image.trim() === '') {
      problems.add('agent.image', this.agent.image, 'must not be empty');
    }
    if (!isToken(this.agent.logLevel) && !LOG_LEVELS.includes(this.agent.logLevel)) {
      problems.add('agent.logLevel', this.agent.logLevel, `must be one of ${LOG_LEVELS.join(', ')}`);
    }

    if (props.upstreamToken) {
      checkSecretKey(problems, 'upstreamToken', props.upstreamToken);
      const affinity = props.policy.affinity;
      const type = typeof affinity === 'object' && affinity !== null ? affinity.type : undefined;
      if (type !== undefined && !isToken(type) && type !== 'copilot-jsonrpc') {
        problems.add(
          'upstreamToken',
          props.upstreamToken.secretName,
          `is presented to a Copilot CLI only: it needs 'policy.affinity.type' "copilot-jsonrpc" (it is ${JSON.stringify(type)})`,
        );
      }
    }
    if (props.adminToken) checkSecretKey(problems, 'adminToken', props.adminToken);
    if (props.principals) checkSecretKey(problems, 'principals', props.principals);
    for (const problem of identityHeaderProblems(props)) problems.addSentence(problem);
    for (const problem of fleetJwtProblems(props)) problems.addSentence(problem);
    checkTrustedProxies(problems, props);
    if (props.app.securityContext) checkSecurityContext(problems, 'app.securityContext', props.app.securityContext);

    if (!isToken(this.scaleOn) && !SCALE_METRICS.includes(this.scaleOn)) {
      problems.add('scaleOn', this.scaleOn, `must be one of ${SCALE_METRICS.map((m) => JSON.stringify(m)).join(', ')}`);
    }
    const target = this.targetSessionUtilization;
    if (!isToken(target) && !(typeof target === 'number' && target > 0 && target <= 1)) {
      problems.add('targetSessionUtilization', target, 'must be above 0 and at most 1');
    }
    checkWholeNumber(problems, 'targetCpuUtilizationPercent', this.targetCpuUtilizationPercent, 1, 100);
    if (!isToken(this.serviceType) && !SERVICE_TYPES.includes(this.serviceType)) {
      problems.add(
        'serviceType',
        this.serviceType,
        `must be one of ${SERVICE_TYPES.map((t) => JSON.stringify(t)).join(', ')}`,
      );
    }
    this.metricsScrapeNamespaces.forEach((ns, index) => {
      if (!isToken(ns) && !isDns1123Label(ns)) {
        problems.add(`metricsScrapeNamespaces[${index}]`, ns, RULES.dns1123Label(63));
      }
    });
    checkWholeNumber(problems, 'preStopDelaySeconds', this.preStopDelaySeconds, 0, 300);

    if (props.tenants !== undefined && props.tenants.length > 0 && isolation !== undefined && isolation !== 'tenant') {
      problems.add(
        'tenants',
        props.tenants.map((t) => t.tenantId),
        `need 'policy.isolation' "tenant" (it is ${JSON.stringify(isolation)})`,
      );
    }
    if (recycle === true && this.storage.kind !== 'ephemeral' && props.storage !== undefined) {
      problems.addShown(
        'storage',
        describeStorage(this.storage),
        'outlives the pod, so a recycled instance would leave its session behind: use KubernetesSessionStorage.ephemeral() with recycleAfterSession',
      );
    }
  }
}

function without<T>(record: Readonly<Record<string, T>>, names: Readonly<Record<string, unknown>> = {}) {
  return Object.fromEntries(Object.entries(record).filter(([name]) => !Object.hasOwn(names, name)));
}

/** Whether any value of the policy is only known at apply time. */
function hasUnresolvedValue(value: unknown): boolean {
  if (isToken(value)) return true;
  if (typeof value === 'object' && value !== null) return Object.values(value).some(hasUnresolvedValue);
  return false;
}
