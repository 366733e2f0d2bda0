/**
 * The props of `KubernetesSessionFleet` and of its tenants, apart from the construct so that each
 * file stays readable; `kubernetes-session-fleet.ts` re-exports them.
 */
import type { PolicyInput } from '../policy/index.js';
import type { FleetJwt } from './fleet-jwt.js';
import type { KubernetesAgentContainer, KubernetesAppContainer } from './kubernetes-containers.js';
import type { KubernetesScaleMetric, KubernetesServiceType } from './kubernetes-fleet-instances.js';
import type { KubernetesFleetRedis } from './kubernetes-redis.js';
import type { KubernetesSessionStorage } from './kubernetes-session-storage.js';
import type { KubernetesTrustedProxies } from './kubernetes-trusted-proxies.js';
import type { KubernetesSecretKey } from './kubernetes-validation.js';

/** One tenant's own credentials, storage and coordination under tenant isolation. */
export interface KubernetesTenantOptions {
  /**
   * Plain environment variables of this tenant's app containers, added to (and overriding) `app.env`.
   * @default - none
   */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Secret environment variables of this tenant's app containers, e.g. the tenant's own GitHub
   * token; added to (and overriding) `app.secretEnv`.
   * @default - none
   */
  readonly secretEnv?: Readonly<Record<string, KubernetesSecretKey>>;
  /**
   * This tenant's principals file (client token → principal).
   * @default - the fleet's `principals`, which only a fleet of one tenant may share
   */
  readonly principals?: KubernetesSecretKey;
  /**
   * This tenant's session-state storage.
   * @default - a volume of its own like the fleet's `storage` (an existing claim cannot be shared)
   */
  readonly storage?: KubernetesSessionStorage;
  /**
   * This tenant's Redis.
   * @default - an in-cluster Redis of its own like the fleet's `redis` (an external one cannot be shared)
   */
  readonly redis?: KubernetesFleetRedis;
}

export interface KubernetesTenant extends KubernetesTenantOptions {
  /**
   * The tenant's id: a DNS label of at most 24 characters. It is part of the names of the tenant's
   * resources, so renaming a tenant replaces them.
   */
  readonly tenantId: string;
}

export interface KubernetesSessionFleetProps {
  /**
   * The fleet's policy (SPEC.md §8), validated with the shared model at synth time and mounted
   * into every agent as its policy file.
   */
  readonly policy: PolicyInput;
  /** The app container: the session-holding server (Copilot CLI, MCP server, HTTP service). */
  readonly app: KubernetesAppContainer;
  /**
   * Base name of the Kubernetes resources: a DNS label of at most 24 characters.
   * @default - the construct id in kebab case ("CopilotCli" → "copilot-cli")
   */
  readonly name?: string;
  /**
   * The fleet's name for the agents (`--fleet`): agents on one Redis coordinate only with agents
   * of the same fleet name, so two fleets sharing an external Redis stay two fleets. Under tenant
   * isolation each tenant's agents get `<fleetName>-<tenantId>`.
   * @default - the construct id in kebab case and 8 hex characters of a hash of the construct path
   */
  readonly fleetName?: string;
  /**
   * Namespace of every resource. It must exist (or be created in the same stack).
   * @default 'default'
   */
  readonly namespace?: string;
  /**
   * Extra labels on every resource and pod.
   * @default - none
   */
  readonly labels?: Readonly<Record<string, string>>;
  /**
   * Where session state lives.
   * @default - `KubernetesSessionStorage.sharedVolume()` (10 GiB, ReadWriteMany); `ephemeral()` when sessions are recycled
   */
  readonly storage?: KubernetesSessionStorage;
  /**
   * The Redis the agents coordinate through.
   * @default - `KubernetesFleetRedis.inCluster()` when `policy.maxInstances` is above 1, otherwise `none()`
   */
  readonly redis?: KubernetesFleetRedis;
  /**
   * The agent sidecar's image and resources.
   * @default - `DEFAULT_AGENT_IMAGE` with 250m/1 CPU and 256 MiB
   */
  readonly agent?: KubernetesAgentContainer;
  /**
   * Copilot CLI fleets: a token the agent presents to the CLI (`--upstream-token`); the CLI is
   * started with the same token as `COPILOT_CONNECTION_TOKEN`, so it accepts no other client.
   * @default - none
   */
  readonly upstreamToken?: KubernetesSecretKey;
  /**
   * Bearer token of the agents' admin API (`--admin-token`).
   * @default - none
   */
  readonly adminToken?: KubernetesSecretKey;
  /**
   * A Secret key holding the principals file, `{"<client token>": "<principal>"}` (`--principals`).
   * @default - none
   */
  readonly principals?: KubernetesSecretKey;
  /**
   * HTTP fronts: a trusted header, set by an authenticating proxy in front, that names the
   * principal (`--principal-header`).
   * @default - none
   */
  readonly principalHeader?: string;
  /**
   * Who may reach the agents' client port: the authenticating proxy's namespaces, pods or address
   * ranges (`KubernetesTrustedProxies.from()`), or explicitly everyone
   * (`KubernetesTrustedProxies.anySource()`). Required with `principalHeader` or `tenantHeader`:
   * whoever reaches the port can name any principal. The CIDRs also go to the agent
   * (`--trusted-proxies`), which refuses the header from any other address.
   * @default - any source (only without `principalHeader` and `tenantHeader`)
   */
  readonly trustedProxies?: KubernetesTrustedProxies;
  /**
   * Session recycling: keep the recycler's right to delete pods to this fleet's pods with a
   * ValidatingAdmissionPolicy and binding (Kubernetes 1.30+, created with `kubernetes_manifest`,
   * which needs the API server at plan time). Without it the recycler's Role can delete any pod of
   * the namespace: give the fleet a namespace of its own then.
   * @see https://kubernetes.io/docs/reference/access-authn-authz/validating-admission-policy/
   * @default true
   */
  readonly recyclerAdmissionPolicy?: boolean;
  /**
   * HTTP fronts: a trusted header, set by an authenticating proxy in front, that names the
   * principal's tenant (`--tenant-header`), so `sessionsPerTenant` counts per tenant. Not with
   * `policy.affinity.type` "copilot-jsonrpc" (its clients' tenants come from `principals`). Under
   * tenant isolation a request whose header names another tenant is refused.
   * @default - a principal has no tenant of its own (under tenant isolation: its tenant's `tenantId`)
   */
  readonly tenantHeader?: string;
  /**
   * JWT mode (ADR 0020): the agents verify `Authorization: Bearer <JWT>` on every request against
   * the issuer's keys and take the principal from it (`--jwt-issuer` and friends), answer 401 with
   * `WWW-Authenticate` otherwise, and serve the Protected Resource Metadata. Not with
   * `principalHeader` or `tenantHeader`; needs no `trustedProxies`.
   * @default - no token is verified (principals from `principalHeader` or `principals`)
   */
  readonly jwt?: FleetJwt;
  /**
   * Session isolation only: end each pod after its one session ends, so the next session starts
   * on a fresh pod with nothing left behind. Sets the policy's `recycleAfterSession`.
   * @default - the policy's `recycleAfterSession` (false)
   */
  readonly recycleAfterSession?: boolean;
  /**
   * What the HorizontalPodAutoscaler scales on: `sessions` is the agents' session-utilization
   * gauge through the Pods metrics API, which needs a custom-metrics adapter such as
   * prometheus-adapter; `cpu` works with metrics-server alone.
   * @see https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#scaling-on-custom-metrics
   * @default 'sessions'
   */
  readonly scaleOn?: KubernetesScaleMetric;
  /**
   * Average session utilization (active sessions / sessionsPerInstance) the autoscaler keeps.
   * @default 0.8
   */
  readonly targetSessionUtilization?: number;
  /**
   * Average CPU utilization, in percent of the requests, when `scaleOn` is `cpu`.
   * @default 70
   */
  readonly targetCpuUtilizationPercent?: number;
  /**
   * Type of the Service in front of the agents.
   * @default 'ClusterIP'
   */
  readonly serviceType?: KubernetesServiceType;
  /**
   * Namespaces whose pods may scrape the agents' admin port (`/metrics`), e.g. `['monitoring']`.
   * Everything else is kept off that port by the NetworkPolicy.
   * @default - none
   */
  readonly metricsScrapeNamespaces?: readonly string[];
  /**
   * How long a stopping pod keeps taking requests before the agent starts draining, while
   * Kubernetes removes it from the Service's endpoints.
   * @default 5
   */
  readonly preStopDelaySeconds?: number;
  /**
   * Tenant isolation (`policy.isolation: "tenant"`): the tenants, each with its own Deployment,
   * Service, storage, Redis and Secret references. More can be added with `addTenant()`.
   * @default - none
   */
  readonly tenants?: readonly KubernetesTenant[];
}
