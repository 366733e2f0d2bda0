/**
 * An independent reading of synthesized Terraform JSON: every `kubernetes_*` resource turned into
 * the Kubernetes manifest the provider would send, without any of the constructs' code. The
 * provider's HCL shape differs from the API's in a few regular ways, undone here: snake_case keys,
 * singular names of list fields (`container` → `containers`), blocks of at most one item written
 * as one-element lists, numbers written as strings, and Terraform-only arguments. References to
 * another resource's `metadata[0].name` are resolved to that name; other expressions stay as
 * `${...}` strings, which the checks treat as unknown until apply.
 */

// biome-ignore lint/suspicious/noExplicitAny: Terraform JSON and manifests are untyped by nature
export type Json = any;

export interface ConvertedManifest {
  /** `<terraform type>.<logical id>` */
  readonly address: string;
  readonly manifest: Json;
}

/** apiVersion and kind of each provider resource type. */
export const KINDS: Readonly<Record<string, readonly [string, string]>> = {
  kubernetes_namespace_v1: ['v1', 'Namespace'],
  kubernetes_config_map_v1: ['v1', 'ConfigMap'],
  kubernetes_secret_v1: ['v1', 'Secret'],
  kubernetes_service_v1: ['v1', 'Service'],
  kubernetes_service_account_v1: ['v1', 'ServiceAccount'],
  kubernetes_persistent_volume_claim_v1: ['v1', 'PersistentVolumeClaim'],
  kubernetes_deployment_v1: ['apps/v1', 'Deployment'],
  kubernetes_stateful_set_v1: ['apps/v1', 'StatefulSet'],
  kubernetes_horizontal_pod_autoscaler_v2: ['autoscaling/v2', 'HorizontalPodAutoscaler'],
  kubernetes_pod_disruption_budget_v1: ['policy/v1', 'PodDisruptionBudget'],
  kubernetes_network_policy_v1: ['networking.k8s.io/v1', 'NetworkPolicy'],
  kubernetes_role_v1: ['rbac.authorization.k8s.io/v1', 'Role'],
  kubernetes_role_binding_v1: ['rbac.authorization.k8s.io/v1', 'RoleBinding'],
};

/** Terraform meta-arguments and provider-only arguments: not part of the object. */
const TERRAFORM_ONLY = new Set([
  'lifecycle',
  'depends_on',
  'provider',
  'count',
  'for_each',
  'timeouts',
  'wait_until_bound',
  'wait_for_rollout',
  'wait_for_load_balancer',
  'automount_service_account_token_top',
  '//',
]);
/** Fields whose keys are data (label names, env of a map, resource names), never converted. */
const MAP_FIELDS = new Set([
  'labels',
  'annotations',
  'match_labels',
  'data',
  'binary_data',
  'string_data',
  'requests',
  'limits',
  'node_selector',
]);
/** List fields the provider names in the singular. */
const PLURAL: Readonly<Record<string, string>> = {
  container: 'containers',
  init_container: 'initContainers',
  volume: 'volumes',
  volume_mount: 'volumeMounts',
  port: 'ports',
  rule: 'rules',
  subject: 'subjects',
  metric: 'metrics',
  policy: 'policies',
  volume_claim_template: 'volumeClaimTemplates',
  topology_spread_constraint: 'topologySpreadConstraints',
  toleration: 'tolerations',
  image_pull_secrets: 'imagePullSecrets',
  sysctl: 'sysctls',
};
/** Lists of objects that stay lists (everything else of one element is a block of at most one). */
const LISTS = new Set([
  ...Object.keys(PLURAL),
  'env',
  'env_from',
  'items',
  'sources',
  'ingress',
  'egress',
  'from',
  'to',
  'match_expressions',
  'ports',
  'values',
]);
/** Where the API's spelling is not the camelCase of the provider's. */
const SPECIAL: Readonly<Record<string, string>> = {
  cluster_ip: 'clusterIP',
  cluster_ips: 'clusterIPs',
  downward_api: 'downwardAPI',
  external_ips: 'externalIPs',
  load_balancer_ip: 'loadBalancerIP',
  host_ip: 'hostIP',
  pod_ip: 'podIP',
};
/** Integer (or int-or-string) fields the provider writes as strings. */
const INTEGERS = new Set([
  'replicas',
  'containerPort',
  'port',
  'targetPort',
  'runAsUser',
  'runAsGroup',
  'fsGroup',
  'maxUnavailable',
  'maxSurge',
  'minAvailable',
]);

const camel = (key: string) => SPECIAL[key] ?? key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Resolves `${type.id.metadata[0].name}` (alone or inside a string) against the stack's resources. */
function resolveNames(value: string, resources: Json): string {
  return value.replace(/\$\{([a-z0-9_]+)\.([A-Za-z0-9_-]+)\.metadata\[0\]\.name\}/g, (whole, type, id) => {
    const name = resources?.[type]?.[id]?.metadata?.name;
    return typeof name === 'string' && !name.includes('${') ? name : whole;
  });
}

function convert(value: Json, key: string | undefined, resources: Json): Json {
  if (typeof value === 'string') {
    const resolved = resolveNames(value, resources);
    if (key !== undefined && INTEGERS.has(key) && /^\d+$/.test(resolved)) return Number(resolved);
    return resolved;
  }
  if (Array.isArray(value)) return value.map((v) => convert(v, undefined, resources));
  if (value === null || typeof value !== 'object') return value;
  const out: Json = {};
  for (const [rawKey, raw] of Object.entries(value)) {
    if (TERRAFORM_ONLY.has(rawKey)) continue;
    if (MAP_FIELDS.has(rawKey) && raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
      out[camel(rawKey)] = Object.fromEntries(
        Object.entries(raw).map(([k, v]) => [k, typeof v === 'string' ? resolveNames(v, resources) : v]),
      );
      continue;
    }
    let inner: Json = raw;
    const objects = Array.isArray(raw) && raw.length > 0 && raw.every((v) => v !== null && typeof v === 'object');
    if (objects && !LISTS.has(rawKey) && raw.length === 1) inner = raw[0];
    const name = objects && PLURAL[rawKey] ? PLURAL[rawKey] : camel(rawKey);
    out[name] = convert(inner, name, resources);
  }
  return out;
}

/** Service.spec.selector is a map in the API; the provider writes it as one, keep its keys. */
function fixServiceSelector(manifest: Json, raw: Json): void {
  if (manifest.kind === 'Service' && raw.spec?.selector) manifest.spec.selector = { ...raw.spec.selector };
}

/** Every `kubernetes_*` resource of one synthesized stack as a manifest (kubernetes_manifest as given). */
export function manifestsOf(stack: Json): ConvertedManifest[] {
  const resources = stack.resource ?? {};
  const out: ConvertedManifest[] = [];
  for (const [type, byId] of Object.entries(resources) as [string, Json][]) {
    if (!type.startsWith('kubernetes_')) continue;
    for (const [id, raw] of Object.entries(byId) as [string, Json][]) {
      const address = `${type}.${id}`;
      if (type === 'kubernetes_manifest') {
        out.push({ address, manifest: convertManifestArgument(raw.manifest, resources) });
        continue;
      }
      const kind = KINDS[type];
      if (!kind) throw new Error(`${address}: no manifest conversion for ${type}`);
      const body = convert(raw, undefined, resources);
      const manifest: Json = { apiVersion: kind[0], kind: kind[1], ...body };
      if (kind[1] === 'Secret' && manifest.data) {
        // The provider takes plain values and encodes them; the API's `data` is base64.
        manifest.stringData = manifest.data;
        delete manifest.data;
      }
      fixServiceSelector(manifest, raw);
      out.push({ address, manifest });
    }
  }
  return out;
}

function convertManifestArgument(manifest: Json, resources: Json): Json {
  return JSON.parse(JSON.stringify(manifest), (_key, v) => (typeof v === 'string' ? resolveNames(v, resources) : v));
}

/** Keys left in provider spelling (a `_` outside data maps): a conversion gap, reported as such. */
export function leftoverKeys(value: Json, path = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => leftoverKeys(v, `${path}/${i}`));
  if (value === null || typeof value !== 'object') return [];
  const found: string[] = [];
  for (const [key, v] of Object.entries(value)) {
    if (['labels', 'annotations', 'matchLabels', 'data', 'stringData', 'requests', 'limits', 'selector'].includes(key))
      continue;
    if (key.includes('_')) found.push(`${path}/${key}`);
    found.push(...leftoverKeys(v, `${path}/${key}`));
  }
  return found;
}
