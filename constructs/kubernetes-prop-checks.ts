/**
 * The checks of `KubernetesSessionFleet`'s props that stand on their own: resources, environment,
 * storage, Redis, trusted proxies and security contexts. Each appends sentences that name the prop,
 * show the value and state the rule; unresolved tokens are never judged.
 */
import { isIP } from 'node:net';
import { parseCpuQuantity } from '../policy/index.js';
import { parseHostPort } from '../policy/redis-url.js';
import type { KubernetesSecurityContext } from './kubernetes-containers.js';
import type { KubernetesFleetRedis } from './kubernetes-redis.js';
import { KUBERNETES_ACCESS_MODES, type KubernetesSessionStorage } from './kubernetes-session-storage.js';
import type { KubernetesTrustedProxies } from './kubernetes-trusted-proxies.js';
import {
  checkSecretKey,
  checkWholeNumber,
  isDns1123Label,
  isDns1123Subdomain,
  isEnvName,
  isLabelKey,
  isLabelValue,
  isToken,
  type KubernetesSecretKey,
  type Problems,
  RULES,
} from './kubernetes-validation.js';

/** The restricted Pod Security Standard allows adding back this capability alone. */
const RESTRICTED_CAPABILITIES = ['NET_BIND_SERVICE'];

/** Whether `value` is an IPv4 or IPv6 CIDR such as "10.0.0.0/8". */
export function isCidr(value: string): boolean {
  const [address, prefix, ...rest] = value.split('/');
  if (rest.length > 0 || address === undefined || prefix === undefined || !/^\d{1,3}$/.test(prefix)) return false;
  const family = isIP(address);
  return family !== 0 && Number(prefix) <= (family === 4 ? 32 : 128);
}

export function checkTrustedProxies(
  problems: Problems,
  props: {
    readonly trustedProxies?: KubernetesTrustedProxies;
    readonly principalHeader?: string;
    readonly tenantHeader?: string;
  },
): void {
  const proxies = props.trustedProxies;
  const header =
    props.principalHeader !== undefined
      ? 'principalHeader'
      : props.tenantHeader !== undefined
        ? 'tenantHeader'
        : undefined;
  if (proxies === undefined) {
    if (header !== undefined) {
      problems.add(
        header,
        props[header],
        "names the caller, so whoever reaches the client port can be anyone: set 'trustedProxies' to the authenticating proxy (KubernetesTrustedProxies.from({ namespaces, podSelector, cidrs })) or, knowingly, KubernetesTrustedProxies.anySource()",
      );
    }
    return;
  }
  if (proxies.kind !== 'sources') return;
  const { namespaces = [], podSelector, cidrs = [] } = proxies.options;
  if (namespaces.length === 0 && podSelector === undefined && cidrs.length === 0) {
    problems.addShown('trustedProxies', 'from({})', 'names no source: give namespaces, a podSelector or cidrs');
  }
  namespaces.forEach((ns, index) => {
    if (!isToken(ns) && !isDns1123Label(ns))
      problems.add(`trustedProxies.namespaces[${index}]`, ns, RULES.dns1123Label(63));
  });
  for (const [key, value] of Object.entries(podSelector ?? {})) {
    if (!isToken(key) && !isLabelKey(key)) problems.add('trustedProxies.podSelector', key, 'is not a label key');
    else if (!isToken(value) && !isLabelValue(value))
      problems.add(`trustedProxies.podSelector.${key}`, value, 'is not a label value');
  }
  cidrs.forEach((cidr, index) => {
    if (!isToken(cidr) && !isCidr(cidr)) {
      problems.add(`trustedProxies.cidrs[${index}]`, cidr, 'must be an IPv4 or IPv6 CIDR such as "10.0.0.0/8"');
    }
  });
}

export function checkSecurityContext(problems: Problems, prop: string, context: KubernetesSecurityContext): void {
  for (const field of ['runAsUser', 'runAsGroup'] as const) {
    const value = context[field];
    if (value !== undefined) checkWholeNumber(problems, `${prop}.${field}`, value, 0, 2_147_483_647);
  }
  if (context.runAsNonRoot !== false && context.runAsUser === 0) {
    problems.add(
      `${prop}.runAsUser`,
      0,
      `is root, which 'runAsNonRoot' (true by default) refuses: set 'runAsNonRoot' false to run as root`,
    );
  }
  (context.addCapabilities ?? []).forEach((capability, index) => {
    if (!isToken(capability) && !/^[A-Z_]+$/.test(capability)) {
      problems.add(
        `${prop}.addCapabilities[${index}]`,
        capability,
        'must be a capability name such as "NET_BIND_SERVICE" (without "CAP_")',
      );
    }
  });
  const seccomp = context.seccompProfile;
  if (seccomp !== undefined && !isToken(seccomp) && seccomp !== 'RuntimeDefault' && seccomp !== 'Unconfined') {
    problems.add(`${prop}.seccompProfile`, seccomp, 'must be "RuntimeDefault" or "Unconfined"');
  }
}

/** Whether a resolved security context stays within the restricted Pod Security Standard. */
export function isRestricted(
  context: Required<
    Pick<KubernetesSecurityContext, 'runAsNonRoot' | 'allowPrivilegeEscalation' | 'addCapabilities' | 'seccompProfile'>
  >,
): boolean {
  return (
    context.runAsNonRoot &&
    !context.allowPrivilegeEscalation &&
    context.seccompProfile === 'RuntimeDefault' &&
    context.addCapabilities.every((c) => RESTRICTED_CAPABILITIES.includes(c))
  );
}

export function checkResources(
  problems: Problems,
  prefix: string,
  resolved: { cpuRequest: string; cpuLimit: string; memoryRequestMiB: number; memoryLimitMiB: number },
  given: { cpuRequest?: string; cpuLimit?: string; memoryRequestMiB?: number; memoryLimitMiB?: number },
): void {
  const cpuRule = 'must be a CPU quantity such as "2", "1500m" or "0.5"';
  const request = isToken(resolved.cpuRequest) ? undefined : parseCpuQuantity(resolved.cpuRequest);
  const limit = isToken(resolved.cpuLimit) ? undefined : parseCpuQuantity(resolved.cpuLimit);
  if (!isToken(resolved.cpuRequest) && request === undefined && given.cpuRequest !== undefined) {
    problems.add(`${prefix}.cpuRequest`, resolved.cpuRequest, cpuRule);
  }
  if (!isToken(resolved.cpuLimit) && limit === undefined && given.cpuLimit !== undefined) {
    problems.add(`${prefix}.cpuLimit`, resolved.cpuLimit, cpuRule);
  }
  if (request !== undefined && limit !== undefined && request > limit) {
    problems.add(
      `${prefix}.cpuRequest`,
      resolved.cpuRequest,
      `must not exceed '${prefix}.cpuLimit' (${JSON.stringify(resolved.cpuLimit)})`,
    );
  }
  checkWholeNumber(problems, `${prefix}.memoryRequestMiB`, resolved.memoryRequestMiB, 1, 1_048_576);
  if (given.memoryLimitMiB !== undefined) {
    checkWholeNumber(problems, `${prefix}.memoryLimitMiB`, resolved.memoryLimitMiB, 1, 1_048_576);
  }
  if (
    !isToken(resolved.memoryRequestMiB) &&
    !isToken(resolved.memoryLimitMiB) &&
    resolved.memoryRequestMiB > resolved.memoryLimitMiB
  ) {
    problems.add(
      `${prefix}.memoryRequestMiB`,
      resolved.memoryRequestMiB,
      `must not exceed '${prefix}.memoryLimitMiB' (${resolved.memoryLimitMiB})`,
    );
  }
}

export function checkEnv(
  problems: Problems,
  prefix: string,
  env: Readonly<Record<string, string>>,
  secretEnv: Readonly<Record<string, KubernetesSecretKey>>,
  upstreamToken: boolean,
): void {
  for (const [kind, names] of [
    ['env', Object.keys(env)],
    ['secretEnv', Object.keys(secretEnv)],
  ] as const) {
    for (const name of names) {
      if (!isEnvName(name)) problems.add(`${prefix}${kind}`, name, RULES.envName);
      else if (upstreamToken && name === 'COPILOT_CONNECTION_TOKEN') {
        problems.add(
          `${prefix}${kind}`,
          name,
          "is set from 'upstreamToken', so that the Copilot CLI accepts the agent alone: remove it here",
        );
      }
    }
  }
  for (const name of Object.keys(secretEnv)) {
    if (Object.hasOwn(env, name)) {
      problems.add(`${prefix}env`, name, `is also in '${prefix}secretEnv': a variable comes from one place`);
    }
    const ref = secretEnv[name];
    if (ref) checkSecretKey(problems, `${prefix}secretEnv.${name}`, ref);
  }
}

export function checkStorage(
  problems: Problems,
  prop: string,
  storage: KubernetesSessionStorage,
  maxInstances: number | undefined,
): void {
  if (!isToken(storage.mountPath) && !storage.mountPath.startsWith('/')) {
    problems.add(`${prop}.mountPath`, storage.mountPath, 'must be an absolute path');
  }
  if (storage.kind === 'shared-volume' || storage.kind === 'per-instance-volume') {
    checkWholeNumber(problems, `${prop}.sizeGiB`, storage.sizeGiB, 1, 65_536);
    if (
      storage.storageClassName !== undefined &&
      !isToken(storage.storageClassName) &&
      !isDns1123Subdomain(storage.storageClassName)
    ) {
      problems.add(`${prop}.storageClassName`, storage.storageClassName, RULES.dns1123Subdomain);
    }
  }
  if (storage.kind === 'existing-claim' && !isToken(storage.claimName) && !isDns1123Subdomain(storage.claimName)) {
    problems.add(`${prop}.claimName`, storage.claimName, RULES.dns1123Subdomain);
  }
  if (storage.kind === 'ephemeral' && storage.sizeLimitMiB !== undefined) {
    checkWholeNumber(problems, `${prop}.sizeLimitMiB`, storage.sizeLimitMiB, 1, 1_048_576);
  }
  if (storage.kind === 'shared-volume' || storage.kind === 'existing-claim') {
    if (!(KUBERNETES_ACCESS_MODES as readonly string[]).includes(storage.accessMode)) {
      problems.add(
        `${prop}.accessMode`,
        storage.accessMode,
        `must be one of ${KUBERNETES_ACCESS_MODES.map((m) => JSON.stringify(m)).join(', ')}`,
      );
    } else if (storage.accessMode !== 'ReadWriteMany' && maxInstances !== undefined && maxInstances > 1) {
      problems.add(
        `${prop}.accessMode`,
        storage.accessMode,
        `lets one node mount the volume, so 'policy.maxInstances' (${maxInstances}) must be 1: use "ReadWriteMany" or KubernetesSessionStorage.perInstanceVolume()`,
      );
    }
  }
  if (
    storage.kind === 'per-instance-volume' &&
    storage.accessMode !== 'ReadWriteOnce' &&
    storage.accessMode !== 'ReadWriteOncePod'
  ) {
    problems.add(`${prop}.accessMode`, storage.accessMode, 'must be "ReadWriteOnce" or "ReadWriteOncePod"');
  }
}

export function checkRedis(
  problems: Problems,
  prop: string,
  redis: KubernetesFleetRedis,
  maxInstances: number | undefined,
): void {
  if (redis.kind === 'none' && maxInstances !== undefined && maxInstances > 1) {
    problems.addShown(
      prop,
      'none',
      `leaves each agent its own in-memory store, which serves one instance: with 'policy.maxInstances' (${maxInstances}) use KubernetesFleetRedis.inCluster() or external()`,
    );
  }
  if (redis.kind === 'external') checkSecretKey(problems, `${prop}.urlSecret`, redis.urlSecret);
  if (redis.kind === 'sentinel' || redis.kind === 'cluster') {
    const list = redis.kind === 'sentinel' ? 'sentinels' : 'nodes';
    const endpoints = redis.kind === 'sentinel' ? redis.sentinels : redis.nodes;
    if (endpoints.length === 0) problems.addShown(`${prop}.${list}`, '[]', 'must name at least one host:port');
    endpoints.forEach((endpoint, index) => {
      if (isToken(endpoint)) return;
      // The connection string's own rule (policy/redis-url.ts), applied to each endpoint.
      const parsed = parseHostPort(endpoint);
      if (typeof parsed === 'string')
        problems.add(`${prop}.${list}[${index}]`, endpoint, 'must be host:port (port 1–65535)');
    });
    if (redis.kind === 'sentinel' && !isToken(redis.primaryName) && !/^[A-Za-z0-9._-]{1,64}$/.test(redis.primaryName))
      problems.add(`${prop}.primaryName`, redis.primaryName, "must be 1–64 letters, digits, '.', '_' or '-'");
    if (redis.passwordSecret) checkSecretKey(problems, `${prop}.passwordSecret`, redis.passwordSecret);
  }
  if (redis.kind === 'in-cluster') {
    if (!isToken(redis.image) && redis.image.trim() === '')
      problems.add(`${prop}.image`, redis.image, 'must not be empty');
    checkWholeNumber(problems, `${prop}.memoryMiB`, redis.memoryMiB, 16, 65_536);
    if (redis.authSecret) checkSecretKey(problems, `${prop}.authSecret`, redis.authSecret);
  }
}
