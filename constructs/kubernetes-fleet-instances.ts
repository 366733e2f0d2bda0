/**
 * One set of instances of a Kubernetes fleet: the whole fleet, or one tenant's dedicated share of
 * it under tenant isolation. Owns the workload (a Deployment, or a StatefulSet for per-instance
 * volumes), the Service in front of the agents, the session-state claim, the autoscaler, the
 * disruption budget, the NetworkPolicy and, when the fleet runs one, its Redis.
 * `KubernetesSessionFleet` creates these; its props are already resolved and validated.
 */
import type { DeploymentV1SpecTemplateSpec } from '@cdktf/provider-kubernetes/lib/deployment-v1/index.js';
import { DeploymentV1 } from '@cdktf/provider-kubernetes/lib/deployment-v1/index.js';
import { HorizontalPodAutoscalerV2 } from '@cdktf/provider-kubernetes/lib/horizontal-pod-autoscaler-v2/index.js';
import { Manifest } from '@cdktf/provider-kubernetes/lib/manifest/index.js';
import {
  NetworkPolicyV1,
  type NetworkPolicyV1SpecIngress,
  type NetworkPolicyV1SpecIngressFrom,
} from '@cdktf/provider-kubernetes/lib/network-policy-v1/index.js';
import { PersistentVolumeClaimV1 } from '@cdktf/provider-kubernetes/lib/persistent-volume-claim-v1/index.js';
import { PodDisruptionBudgetV1 } from '@cdktf/provider-kubernetes/lib/pod-disruption-budget-v1/index.js';
import { RoleBindingV1 } from '@cdktf/provider-kubernetes/lib/role-binding-v1/index.js';
import { RoleV1 } from '@cdktf/provider-kubernetes/lib/role-v1/index.js';
import { ServiceAccountV1 } from '@cdktf/provider-kubernetes/lib/service-account-v1/index.js';
import { ServiceV1 } from '@cdktf/provider-kubernetes/lib/service-v1/index.js';
import {
  StatefulSetV1,
  type StatefulSetV1SpecTemplateSpec,
} from '@cdktf/provider-kubernetes/lib/stateful-set-v1/index.js';
import { Token } from 'cdktf';
import { Construct } from 'constructs';
import {
  AGENT_ADMIN_PORT,
  AGENT_CLIENT_PORT,
  PLACEMENT_DEMAND_METRIC,
  SESSION_UTILIZATION_METRIC,
} from '../policy/agent-interface.js';
import type { Policy } from '../policy/index.js';
import type { FleetJwt } from './fleet-jwt.js';
import {
  type AgentRedisConnection,
  APP_CONTAINER_NAME,
  fleetPodSpec,
  prometheusAnnotations,
  type ResolvedAgentContainer,
  type ResolvedAppContainer,
  SESSION_STATE_VOLUME,
} from './kubernetes-containers.js';
import {
  haRedisUrl,
  type KubernetesFleetRedis,
  KubernetesRedis,
  REDIS_PASSWORD_REFERENCE,
} from './kubernetes-redis.js';
import type { KubernetesSessionStorage } from './kubernetes-session-storage.js';
import { type KubernetesTrustedProxies, trustedProxyPeers } from './kubernetes-trusted-proxies.js';
import { fractionQuantity, type KubernetesSecretKey } from './kubernetes-validation.js';

export { PLACEMENT_DEMAND_METRIC, SESSION_UTILIZATION_METRIC };

/** Label that ties a tenant's pods together; NetworkPolicies deny traffic between its values. */
export const TENANT_LABEL = 'sessionfleet/tenant';

/** What the HorizontalPodAutoscaler scales on. */
export type KubernetesScaleMetric = 'sessions' | 'cpu';
export type KubernetesServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer';

export interface KubernetesFleetInstancesProps {
  readonly namespace: string;
  /** Name of the workload, its Service, autoscaler, disruption budget and NetworkPolicy. */
  readonly name: string;
  /** Labels of every resource; they include `selectorLabels`. */
  readonly labels: Readonly<Record<string, string>>;
  /** Labels that select exactly these instances' pods. */
  readonly selectorLabels: Readonly<Record<string, string>>;
  /** Labels of this fleet's Redis pod, which get `component: redis` instead of `instance`. */
  readonly redisSelectorLabels: Readonly<Record<string, string>>;
  /** Set for one tenant's instances under tenant isolation. */
  readonly tenantId?: string;
  readonly policy: Policy;
  readonly policyConfigMapName: string;
  /** The agents' `--fleet`: agents on one Redis coordinate only with those of the same name. */
  readonly fleetName: string;
  /** Who may reach the client port (and send the principal header). @default - any source */
  readonly trustedProxies?: KubernetesTrustedProxies;
  /**
   * Session recycling: also keep the recycler's pod deletions to this fleet's pods with a
   * ValidatingAdmissionPolicy (RBAC cannot select pods by label).
   */
  readonly recyclerAdmissionPolicy: boolean;
  /** SHA-256 of the policy file: a pod-template annotation, so a policy change rolls the pods. */
  readonly policyChecksum: string;
  readonly app: ResolvedAppContainer;
  readonly agent: ResolvedAgentContainer;
  readonly storage: KubernetesSessionStorage;
  readonly redis: KubernetesFleetRedis;
  readonly upstreamToken?: KubernetesSecretKey;
  readonly adminToken?: KubernetesSecretKey;
  readonly principals?: KubernetesSecretKey;
  readonly principalHeader?: string;
  readonly tenantHeader?: string;
  readonly jwt?: FleetJwt;
  readonly scaleOn: KubernetesScaleMetric;
  readonly targetSessionUtilization: number;
  readonly targetCpuUtilizationPercent: number;
  readonly serviceType: KubernetesServiceType;
  readonly metricsScrapeNamespaces: readonly string[];
  readonly preStopDelaySeconds: number;
}

export class KubernetesFleetInstances extends Construct {
  /** The tenant these instances belong to, under tenant isolation. */
  public readonly tenantId?: string;
  /** The Deployment, unless the storage is per instance. */
  public readonly deployment?: DeploymentV1;
  /** The StatefulSet, for per-instance session-state volumes. */
  public readonly statefulSet?: StatefulSetV1;
  /** The Service clients connect to: it targets the agents' port only. */
  public readonly service: ServiceV1;
  /** The headless Service that gives a StatefulSet's pods their stable DNS names. */
  public readonly peerService?: ServiceV1;
  /** The shared session-state claim, for `sharedVolume()` storage. */
  public readonly sessionStateClaim?: PersistentVolumeClaimV1;
  public readonly autoscaler: HorizontalPodAutoscalerV2;
  public readonly disruptionBudget: PodDisruptionBudgetV1;
  public readonly networkPolicy: NetworkPolicyV1;
  /** The in-cluster Redis these instances coordinate through, when the construct runs one. */
  public readonly redis?: KubernetesRedis;
  /** Session recycling: the ServiceAccount whose token lets the agent delete its own pod. */
  public readonly recyclerServiceAccount?: ServiceAccountV1;
  /** Session recycling: the admission policy (and its binding) that keeps the recycler to this fleet's pods. */
  public readonly recyclerAdmissionPolicy?: Manifest;

  constructor(scope: Construct, id: string, props: KubernetesFleetInstancesProps) {
    super(scope, id);
    if (props.tenantId !== undefined) this.tenantId = props.tenantId;
    const { policy, storage, namespace } = props;
    const metadata = (name: string) => ({ name, namespace, labels: { ...props.labels } });

    let redisConnection: AgentRedisConnection = { kind: 'none' };
    if (props.redis.kind === 'external') {
      redisConnection = { kind: 'url', urlSecret: props.redis.urlSecret };
    } else if (props.redis.kind === 'in-cluster') {
      const redisLabels = { ...props.labels, ...props.redisSelectorLabels };
      this.redis = new KubernetesRedis(this, 'Redis', {
        namespace,
        name: `${props.name}-redis`,
        labels: redisLabels,
        selectorLabels: props.redisSelectorLabels,
        clientLabels: props.selectorLabels,
        image: props.redis.image,
        memoryMiB: props.redis.memoryMiB,
        ...(props.redis.authSecret ? { authSecret: props.redis.authSecret } : {}),
      });
      redisConnection = {
        kind: 'template',
        url: `redis://:${REDIS_PASSWORD_REFERENCE}@${this.redis.host}:${this.redis.port}`,
        passwordSecret: this.redis.authSecretKey,
      };
    } else if (props.redis.kind === 'sentinel' || props.redis.kind === 'cluster') {
      redisConnection = {
        kind: 'template',
        url: haRedisUrl(props.redis),
        ...(props.redis.passwordSecret ? { passwordSecret: props.redis.passwordSecret } : {}),
      };
    }

    const claimName = `${props.name}-session-state`;
    if (storage.kind === 'shared-volume') {
      this.sessionStateClaim = new PersistentVolumeClaimV1(this, 'SessionStateClaim', {
        metadata: metadata(claimName),
        spec: {
          accessModes: [storage.accessMode],
          resources: { requests: { storage: `${storage.sizeGiB}Gi` } },
          ...(storage.storageClassName !== undefined ? { storageClassName: storage.storageClassName } : {}),
        },
        // With WaitForFirstConsumer classes the claim binds only once a pod uses it: waiting here
        // would deadlock the apply before the workload exists.
        waitUntilBound: false,
      });
    }

    let recyclerServiceAccountName: string | undefined;
    if (policy.recycleAfterSession === true) {
      const literalName = `${props.name}-recycler`;
      this.recyclerServiceAccount = new ServiceAccountV1(this, 'RecyclerServiceAccount', {
        metadata: metadata(literalName),
        automountServiceAccountToken: false,
      });
      recyclerServiceAccountName = this.recyclerServiceAccount.metadata.name;
      // Deleting its own pod is how an agent hands its instance back after the one session: the
      // workload then starts a fresh pod, with fresh volumes and nothing of the last session.
      // RBAC cannot name pods that do not exist yet nor select them by label, so the Role allows
      // every pod of the namespace and the admission policy below narrows it to this fleet's.
      const role = new RoleV1(this, 'RecyclerRole', {
        metadata: metadata(literalName),
        rule: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'delete'] }],
      });
      new RoleBindingV1(this, 'RecyclerRoleBinding', {
        metadata: metadata(literalName),
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name },
        subject: [{ kind: 'ServiceAccount', name: recyclerServiceAccountName, namespace }],
      });
      if (props.recyclerAdmissionPolicy) {
        this.recyclerAdmissionPolicy = recyclerAdmission(this, props, literalName);
      }
    }

    const podSpec: DeploymentV1SpecTemplateSpec = fleetPodSpec({
      policy,
      policyConfigMapName: props.policyConfigMapName,
      app: props.app,
      agent: props.agent,
      storage,
      claimName: this.sessionStateClaim ? this.sessionStateClaim.metadata.name : claimName,
      redis: redisConnection,
      fleetName: props.fleetName,
      ...(cidrsOf(props.trustedProxies) ? { trustedProxyCidrs: cidrsOf(props.trustedProxies) } : {}),
      ...(props.upstreamToken ? { upstreamToken: props.upstreamToken } : {}),
      ...(props.adminToken ? { adminToken: props.adminToken } : {}),
      ...(props.principals ? { principals: props.principals } : {}),
      ...(props.principalHeader !== undefined ? { principalHeader: props.principalHeader } : {}),
      ...(props.tenantHeader !== undefined ? { tenantHeader: props.tenantHeader } : {}),
      ...(props.jwt !== undefined ? { jwt: props.jwt } : {}),
      ...(props.tenantId !== undefined ? { tenantId: props.tenantId } : {}),
      preStopDelaySeconds: props.preStopDelaySeconds,
      ...(recyclerServiceAccountName ? { recyclerServiceAccountName } : {}),
    });
    const podSpecWithSpread = {
      ...podSpec,
      // Spread instances over nodes so one node failure does not take every session with it.
      topologySpreadConstraint: [
        {
          maxSkew: 1,
          topologyKey: 'kubernetes.io/hostname',
          whenUnsatisfiable: 'ScheduleAnyway',
          labelSelector: [{ matchLabels: { ...props.selectorLabels } }],
        },
      ],
    };
    const template = {
      metadata: {
        labels: { ...props.labels },
        annotations: {
          ...prometheusAnnotations(),
          'kubectl.kubernetes.io/default-container': APP_CONTAINER_NAME,
          'sessionfleet/policy-sha256': props.policyChecksum,
        },
      },
    };
    const replicas = Token.isUnresolved(policy.minInstances)
      ? Token.asString(policy.minInstances)
      : String(policy.minInstances);
    // The autoscaler owns the replica count once the workload exists.
    const lifecycle = { ignoreChanges: ['spec[0].replicas'] };

    let workloadKind: 'Deployment' | 'StatefulSet';
    let workloadName: string;
    if (storage.kind === 'per-instance-volume') {
      this.peerService = new ServiceV1(this, 'PeerService', {
        metadata: metadata(`${props.name}-peers`),
        spec: {
          clusterIp: 'None',
          publishNotReadyAddresses: true,
          selector: { ...props.selectorLabels },
          port: [{ name: 'agent', port: AGENT_CLIENT_PORT, targetPort: 'agent', protocol: 'TCP' }],
        },
      });
      this.statefulSet = new StatefulSetV1(this, 'StatefulSet', {
        metadata: metadata(props.name),
        spec: {
          serviceName: this.peerService.metadata.name,
          replicas,
          // Instances are independent of each other: start and stop them in parallel.
          podManagementPolicy: 'Parallel',
          selector: { matchLabels: { ...props.selectorLabels } },
          updateStrategy: [{ type: 'RollingUpdate' }],
          template: { ...template, spec: podSpecWithSpread as StatefulSetV1SpecTemplateSpec },
          volumeClaimTemplate: [
            {
              metadata: { name: SESSION_STATE_VOLUME, labels: { ...props.labels } },
              spec: {
                accessModes: [storage.accessMode],
                resources: { requests: { storage: `${storage.sizeGiB}Gi` } },
                ...(storage.storageClassName !== undefined ? { storageClassName: storage.storageClassName } : {}),
              },
            },
          ],
        },
        lifecycle,
      });
      workloadKind = 'StatefulSet';
      workloadName = this.statefulSet.metadata.name;
    } else {
      // A volume only one node can mount cannot be handed from the old pod to a surge pod.
      const singleNodeVolume =
        (storage.kind === 'shared-volume' || storage.kind === 'existing-claim') &&
        storage.accessMode !== 'ReadWriteMany';
      this.deployment = new DeploymentV1(this, 'Deployment', {
        metadata: metadata(props.name),
        spec: {
          replicas,
          selector: { matchLabels: { ...props.selectorLabels } },
          strategy: singleNodeVolume
            ? { type: 'Recreate' }
            : { type: 'RollingUpdate', rollingUpdate: { maxSurge: '1', maxUnavailable: '0' } },
          template: { ...template, spec: podSpecWithSpread },
        },
        lifecycle,
      });
      workloadKind = 'Deployment';
      workloadName = this.deployment.metadata.name;
    }

    this.service = new ServiceV1(this, 'Service', {
      metadata: metadata(props.name),
      spec: {
        type: props.serviceType,
        selector: { ...props.selectorLabels },
        // The agent's client port only: nothing reaches the app without passing the agent.
        port: [{ name: 'agent', port: AGENT_CLIENT_PORT, targetPort: 'agent', protocol: 'TCP' }],
      },
    });

    this.autoscaler = new HorizontalPodAutoscalerV2(this, 'Autoscaler', {
      metadata: metadata(props.name),
      spec: {
        minReplicas: policy.minInstances,
        maxReplicas: policy.maxInstances,
        scaleTargetRef: { apiVersion: 'apps/v1', kind: workloadKind, name: workloadName },
        metric: [
          props.scaleOn === 'sessions'
            ? {
                // Needs a custom-metrics adapter (e.g. prometheus-adapter) serving the agents' gauge
                // through the Pods metrics API.
                type: 'Pods',
                pods: {
                  metric: { name: SESSION_UTILIZATION_METRIC },
                  target: { type: 'AverageValue', averageValue: fractionQuantity(props.targetSessionUtilization) },
                },
              }
            : {
                type: 'Resource',
                resource: {
                  name: 'cpu',
                  target: { type: 'Utilization', averageUtilization: props.targetCpuUtilizationPercent },
                },
              },
        ],
        behavior: {
          // Removing an instance ends or moves its sessions: scale down one pod a minute at most.
          scaleDown: [
            {
              stabilizationWindowSeconds: 300,
              policy: [{ type: 'Pods', value: 1, periodSeconds: 60 }],
            },
          ],
        },
      },
    });

    this.disruptionBudget = new PodDisruptionBudgetV1(this, 'DisruptionBudget', {
      metadata: metadata(props.name),
      spec: { maxUnavailable: '1', selector: { matchLabels: { ...props.selectorLabels } } },
    });

    this.networkPolicy = new NetworkPolicyV1(this, 'NetworkPolicy', {
      metadata: metadata(props.name),
      spec: {
        podSelector: { matchLabels: { ...props.selectorLabels } },
        policyTypes: ['Ingress'],
        ingress: ingressRules(props),
      },
    });
  }
}

/**
 * Only the agent's client port is open: to anyone for a shared fleet; under tenant isolation to the
 * tenant's own pods and to pods that belong to no tenant (clients, ingress controllers), so one
 * tenant's instances cannot reach another's. The admin port opens only to the namespaces that
 * scrape metrics.
 */
function ingressRules(props: KubernetesFleetInstancesProps): NetworkPolicyV1SpecIngress[] {
  const clientPort = [{ port: String(AGENT_CLIENT_PORT), protocol: 'TCP' }];
  const rules: NetworkPolicyV1SpecIngress[] = [];
  const proxies = props.trustedProxies ? trustedProxyPeers(props.trustedProxies, props.namespace) : undefined;
  // The fleet's own pods forward requests to each other (agent to agent) on the client port.
  const ownPods: NetworkPolicyV1SpecIngressFrom = { podSelector: { matchLabels: { ...props.selectorLabels } } };
  if (proxies !== undefined) {
    rules.push({ ports: clientPort, from: [ownPods, ...proxies] });
  } else if (props.tenantId === undefined) {
    rules.push({ ports: clientPort });
  } else {
    const from: NetworkPolicyV1SpecIngressFrom[] = [
      ownPods,
      {
        namespaceSelector: {},
        podSelector: { matchExpressions: [{ key: TENANT_LABEL, operator: 'DoesNotExist' }] },
      },
    ];
    rules.push({ ports: clientPort, from });
  }
  if (props.metricsScrapeNamespaces.length > 0) {
    rules.push({
      ports: [{ port: String(AGENT_ADMIN_PORT), protocol: 'TCP' }],
      from: props.metricsScrapeNamespaces.map((name) => ({
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': name } },
      })),
    });
  }
  return rules;
}

function cidrsOf(proxies: KubernetesTrustedProxies | undefined): readonly string[] | undefined {
  const cidrs = proxies?.kind === 'sources' ? proxies.options.cidrs : undefined;
  return cidrs !== undefined && cidrs.length > 0 ? cidrs : undefined;
}

/**
 * A ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1, Kubernetes 1.30+) and its binding:
 * the recycler's ServiceAccount may delete only pods carrying this fleet's selector labels and,
 * where the API server puts the pod name in the token's claims (1.30+), only its own pod. Both are
 * cluster-scoped, so their names carry the namespace. `kubernetes_manifest` needs the API server
 * at plan time.
 * @see https://kubernetes.io/docs/reference/access-authn-authz/validating-admission-policy/
 */
function recyclerAdmission(scope: Construct, props: KubernetesFleetInstancesProps, serviceAccount: string): Manifest {
  const name = `sessionfleet-${props.namespace}-${serviceAccount}`;
  const labelChecks = Object.entries(props.selectorLabels)
    .map(([key, value]) => `oldObject.metadata.labels[${JSON.stringify(key)}] == ${JSON.stringify(value)}`)
    .join(' && ');
  const podName = "request.userInfo.extra['authentication.kubernetes.io/pod-name']";
  const policy = new Manifest(scope, 'RecyclerAdmissionPolicy', {
    manifest: {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name, labels: { ...props.labels } },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: {
          resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['DELETE'], resources: ['pods'] }],
        },
        matchConditions: [
          {
            name: 'recycler',
            expression: `request.userInfo.username == ${JSON.stringify(`system:serviceaccount:${props.namespace}:${serviceAccount}`)}`,
          },
        ],
        validations: [
          {
            expression: `has(oldObject.metadata.labels) && ${labelChecks}`,
            message: `the recycler of fleet ${props.name} may delete its fleet's pods only`,
          },
          {
            expression: `!has(request.userInfo.extra) || !('authentication.kubernetes.io/pod-name' in request.userInfo.extra) || ${podName}[0] == oldObject.metadata.name`,
            message: `the recycler of fleet ${props.name} may delete its own pod only`,
          },
        ],
      },
    },
  });
  new Manifest(scope, 'RecyclerAdmissionPolicyBinding', {
    manifest: {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name, labels: { ...props.labels } },
      spec: {
        policyName: name,
        validationActions: ['Deny'],
        matchResources: {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': props.namespace } },
        },
      },
    },
    dependsOn: [policy],
  });
  return policy;
}
