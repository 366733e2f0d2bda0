/**
 * The Redis a Kubernetes fleet's agents coordinate through (SPEC.md §1, §6): an existing endpoint,
 * a small in-cluster Redis the construct creates, or none for a one-instance fleet.
 *
 * The in-cluster Redis requires AUTH. Its password is generated at apply time by Terraform's
 * `uuid()` into a Secret whose data Terraform then ignores (the documented way to use `uuid()` in a
 * resource), so the synthesized JSON holds no password and stays identical on every synth. The
 * password reaches Redis on standard input, never on its command line, and reaches the agents as
 * an environment variable from the Secret, never as plain configuration.
 */
import { DeploymentV1 } from '@cdktf/provider-kubernetes/lib/deployment-v1/index.js';
import { NetworkPolicyV1 } from '@cdktf/provider-kubernetes/lib/network-policy-v1/index.js';
import { SecretV1 } from '@cdktf/provider-kubernetes/lib/secret-v1/index.js';
import { ServiceV1 } from '@cdktf/provider-kubernetes/lib/service-v1/index.js';
import { Fn } from 'cdktf';
import { Construct } from 'constructs';
import { type KubernetesSecretKey, mebibytes } from './kubernetes-validation.js';

export const REDIS_PORT = 6379;
export const DEFAULT_REDIS_IMAGE = 'redis:7.4-alpine';
/** The uid and gid of the `redis` user of the official Redis images. */
const REDIS_UID = 999;

export interface KubernetesInClusterRedisOptions {
  /**
   * Redis image. It must provide `sh` and `redis-server` (the official images do).
   * @default 'redis:7.4-alpine'
   */
  readonly image?: string;
  /**
   * Memory of the Redis container, in MiB (request and limit); Redis may use 75% of it for data.
   * @default 128
   */
  readonly memoryMiB?: number;
  /**
   * The Secret key that holds the AUTH password, when you manage the password yourself. It must
   * be URL-safe (letters, digits, `-._~`): the agents reach Redis at `redis://:<password>@host`.
   * @default - a Secret with a password Terraform generates at apply time
   */
  readonly authSecret?: KubernetesSecretKey;
}

/** A highly available Redis you run (a chart or an operator) or a managed one. */
interface KubernetesHaRedisOptions {
  /**
   * The Secret key that holds the Redis password, e.g. the Bitnami chart's
   * `{ secretName: '<release>-redis', key: 'redis-password' }`. It must be URL-safe (letters,
   * digits, `-._~`): it becomes part of the agents' connection string.
   * @default - no password
   */
  readonly passwordSecret?: KubernetesSecretKey;
  /**
   * TLS to Redis (and to the sentinels).
   * @default false
   */
  readonly tls?: boolean;
}

export interface KubernetesRedisSentinelOptions extends KubernetesHaRedisOptions {
  /**
   * The sentinels as `host:port`, e.g. `['my-redis:26379']` (the Bitnami chart's Service, which
   * spreads over every sentinel) or one entry per sentinel pod. At least one.
   */
  readonly sentinels: readonly string[];
  /**
   * The name the sentinels monitor the primary under.
   * @default 'mymaster' (the Bitnami chart's and the Redis operator's default)
   */
  readonly primaryName?: string;
  /**
   * Whether the sentinels ask for the same password as Redis (the Bitnami chart's
   * `auth.sentinel`, on by default).
   * @default - true when `passwordSecret` is given
   */
  readonly sentinelsUsePassword?: boolean;
}

export interface KubernetesRedisClusterOptions extends KubernetesHaRedisOptions {
  /** Seed nodes of the Redis Cluster as `host:port`, e.g. `['my-redis-cluster:6379']`. At least one. */
  readonly nodes: readonly string[];
}

/** How a fleet's agents reach Redis; create one with the `KubernetesFleetRedis` functions. */
export type KubernetesFleetRedis =
  | { readonly kind: 'external'; readonly urlSecret: KubernetesSecretKey }
  | {
      readonly kind: 'sentinel';
      readonly sentinels: readonly string[];
      readonly primaryName: string;
      readonly passwordSecret?: KubernetesSecretKey;
      readonly sentinelsUsePassword: boolean;
      readonly tls: boolean;
    }
  | {
      readonly kind: 'cluster';
      readonly nodes: readonly string[];
      readonly passwordSecret?: KubernetesSecretKey;
      readonly tls: boolean;
    }
  | {
      readonly kind: 'in-cluster';
      readonly image: string;
      readonly memoryMiB: number;
      readonly authSecret?: KubernetesSecretKey;
    }
  | { readonly kind: 'none' };

export const KubernetesFleetRedis = {
  /**
   * A Redis you run: the agents read its `redis://` or `rediss://` URL, password included, from a
   * Secret key.
   */
  external(urlSecret: KubernetesSecretKey): KubernetesFleetRedis {
    return { kind: 'external', urlSecret };
  },
  /**
   * A Sentinel-managed primary with replicas that you run, e.g. the Bitnami `redis` chart with
   * `sentinel.enabled=true` or the Redis operator's RedisReplication + RedisSentinel: the agents
   * ask the sentinels where the primary is and follow a failover (docs/kubernetes.md).
   */
  sentinel(options: KubernetesRedisSentinelOptions): KubernetesFleetRedis {
    return {
      kind: 'sentinel',
      sentinels: [...options.sentinels],
      primaryName: options.primaryName ?? 'mymaster',
      ...(options.passwordSecret !== undefined ? { passwordSecret: options.passwordSecret } : {}),
      sentinelsUsePassword: options.sentinelsUsePassword ?? options.passwordSecret !== undefined,
      tls: options.tls ?? false,
    };
  },
  /** A Redis Cluster you run (e.g. the Bitnami `redis-cluster` chart) or a managed cluster endpoint. */
  cluster(options: KubernetesRedisClusterOptions): KubernetesFleetRedis {
    return {
      kind: 'cluster',
      nodes: [...options.nodes],
      ...(options.passwordSecret !== undefined ? { passwordSecret: options.passwordSecret } : {}),
      tls: options.tls ?? false,
    };
  },
  /** A single small Redis in the fleet's namespace, with AUTH, reachable only from the fleet's pods. */
  inCluster(options: KubernetesInClusterRedisOptions = {}): KubernetesFleetRedis {
    return {
      kind: 'in-cluster',
      image: options.image ?? DEFAULT_REDIS_IMAGE,
      memoryMiB: options.memoryMiB ?? 128,
      ...(options.authSecret !== undefined ? { authSecret: options.authSecret } : {}),
    };
  },
  /** No Redis: each agent uses its embedded in-memory store, which serves a one-instance fleet only. */
  none(): KubernetesFleetRedis {
    return { kind: 'none' };
  },
} as const;

export interface KubernetesRedisProps {
  /** Namespace of every resource. */
  readonly namespace: string;
  /** Name of the Deployment, the Service and the NetworkPolicy. */
  readonly name: string;
  /** Labels of every resource and of the pod, the selector labels included. */
  readonly labels: Readonly<Record<string, string>>;
  /** Labels that select the Redis pod (a subset of `labels`). */
  readonly selectorLabels: Readonly<Record<string, string>>;
  /** Labels of the pods that may connect: only they get through the NetworkPolicy. */
  readonly clientLabels: Readonly<Record<string, string>>;
  readonly image: string;
  readonly memoryMiB: number;
  /** @default - a generated Secret named `<name>-auth` */
  readonly authSecret?: KubernetesSecretKey;
}

/** A single-replica Redis without persistence, with AUTH and a NetworkPolicy. */
export class KubernetesRedis extends Construct {
  /** The Secret key that holds the AUTH password. */
  public readonly authSecretKey: KubernetesSecretKey;
  /** The generated password Secret, unless `authSecret` was given. */
  public readonly authSecret?: SecretV1;
  public readonly deployment: DeploymentV1;
  public readonly service: ServiceV1;
  public readonly networkPolicy: NetworkPolicyV1;
  /** Host name the fleet's pods reach Redis at (the Service, in the same namespace). */
  public readonly host: string;
  public readonly port = REDIS_PORT;

  constructor(scope: Construct, id: string, props: KubernetesRedisProps) {
    super(scope, id);
    const metadata = { namespace: props.namespace, labels: { ...props.labels } };

    if (props.authSecret) {
      this.authSecretKey = props.authSecret;
    } else {
      const secretName = `${props.name}-auth`;
      this.authSecret = new SecretV1(this, 'AuthSecret', {
        metadata: { ...metadata, name: secretName },
        type: 'Opaque',
        // A UUID (122 random bits) generated once, when the Secret is created; `ignore_changes`
        // keeps the next plans from replacing it with a new one.
        data: { password: Fn.uuid() },
        lifecycle: { ignoreChanges: ['data'] },
      });
      // A reference, not the literal name: Terraform then creates the Secret before the pods using it.
      this.authSecretKey = { secretName: this.authSecret.metadata.name, key: 'password' };
    }

    const maxMemoryMiB = Math.floor(props.memoryMiB * 0.75);
    this.deployment = new DeploymentV1(this, 'Deployment', {
      metadata: { ...metadata, name: props.name },
      spec: {
        replicas: '1',
        selector: { matchLabels: { ...props.selectorLabels } },
        // One replica without persistence: a new pod must not run beside the old one.
        strategy: { type: 'Recreate' },
        template: {
          metadata: { labels: { ...props.labels } },
          spec: {
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
            container: [
              {
                name: 'redis',
                image: props.image,
                // The password goes into redis-server's configuration on standard input, so it never
                // shows on a command line. "$@" passes the settings below.
                command: [
                  'sh',
                  '-c',
                  'exec redis-server - "$@" <<EOF\nrequirepass $REDIS_PASSWORD\nEOF\n',
                  'redis-server',
                ],
                args: [
                  '--port',
                  String(REDIS_PORT),
                  '--save',
                  '',
                  '--appendonly',
                  'no',
                  '--maxmemory',
                  `${maxMemoryMiB}mb`,
                  // Coordination data (leases, owners, locks) must never be evicted silently.
                  '--maxmemory-policy',
                  'noeviction',
                ],
                env: [
                  {
                    name: 'REDIS_PASSWORD',
                    valueFrom: {
                      secretKeyRef: { name: this.authSecretKey.secretName, key: this.authSecretKey.key },
                    },
                  },
                ],
                port: [{ name: 'redis', containerPort: REDIS_PORT, protocol: 'TCP' }],
                resources: {
                  requests: { cpu: '50m', memory: mebibytes(props.memoryMiB) },
                  limits: { cpu: '500m', memory: mebibytes(props.memoryMiB) },
                },
                livenessProbe: { tcpSocket: [{ port: String(REDIS_PORT) }], periodSeconds: 10 },
                readinessProbe: { tcpSocket: [{ port: String(REDIS_PORT) }], periodSeconds: 5 },
                securityContext: {
                  runAsNonRoot: true,
                  runAsUser: String(REDIS_UID),
                  runAsGroup: String(REDIS_UID),
                  readOnlyRootFilesystem: true,
                  allowPrivilegeEscalation: false,
                  capabilities: { drop: ['ALL'] },
                },
                volumeMount: [{ name: 'data', mountPath: '/data' }],
              },
            ],
            volume: [{ name: 'data', emptyDir: {} }],
          },
        },
      },
    });

    this.service = new ServiceV1(this, 'Service', {
      metadata: { ...metadata, name: props.name },
      spec: {
        type: 'ClusterIP',
        selector: { ...props.selectorLabels },
        port: [{ name: 'redis', port: REDIS_PORT, targetPort: 'redis', protocol: 'TCP' }],
      },
    });
    this.host = this.service.metadata.name;

    this.networkPolicy = new NetworkPolicyV1(this, 'NetworkPolicy', {
      metadata: { ...metadata, name: props.name },
      spec: {
        podSelector: { matchLabels: { ...props.selectorLabels } },
        policyTypes: ['Ingress'],
        ingress: [
          {
            ports: [{ port: String(REDIS_PORT), protocol: 'TCP' }],
            from: [{ podSelector: { matchLabels: { ...props.clientLabels } } }],
          },
        ],
      },
    });
  }
}

/** Where the agents' connection string takes the password from: `$(REDIS_PASSWORD)`, set from the Secret. */
export const REDIS_PASSWORD_REFERENCE = '$(REDIS_PASSWORD)';

/**
 * The agents' `--redis` for a Sentinel or Cluster Redis: a connection string (policy/redis-url.ts
 * reads it) whose password, if any, Kubernetes fills in from the Secret when the pod starts.
 */
export function haRedisUrl(redis: Extract<KubernetesFleetRedis, { kind: 'sentinel' | 'cluster' }>): string {
  const auth = redis.passwordSecret ? `:${REDIS_PASSWORD_REFERENCE}@` : '';
  const tls = redis.tls ? 's' : '';
  if (redis.kind === 'cluster') return `redis${tls}-cluster://${auth}${redis.nodes.join(',')}`;
  const query =
    redis.passwordSecret && redis.sentinelsUsePassword ? `?sentinelPassword=${REDIS_PASSWORD_REFERENCE}` : '';
  return `redis${tls}-sentinel://${auth}${redis.sentinels.join(',')}/${encodeURIComponent(redis.primaryName)}${query}`;
}
