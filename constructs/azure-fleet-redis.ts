/**
 * The Redis the agents of an Azure fleet coordinate through (instance leases, session owners,
 * placement, locks), reachable over TLS only: Azure Managed Redis (`azurerm_managed_redis`, the
 * default for new fleets) or, on request, the Azure Cache for Redis tiers Basic/Standard/Premium,
 * which Microsoft is retiring.
 * @see https://learn.microsoft.com/azure/redis/migrate/migrate-overview
 */
import { ManagedRedis } from '@cdktf/provider-azurerm/lib/managed-redis/index.js';
import { RedisCache } from '@cdktf/provider-azurerm/lib/redis-cache/index.js';
import { Fn, Token } from 'cdktf';
import { Construct } from 'constructs';

/** The retiring Azure Cache for Redis tiers. */
export const REDIS_SKUS = ['Basic', 'Standard', 'Premium'] as const;
export type RedisCacheSku = (typeof REDIS_SKUS)[number];
/**
 * An Azure Managed Redis SKU (`Balanced_B1`, `MemoryOptimized_M10`, `ComputeOptimized_X5`,
 * `FlashOptimized_A250`, ...) or one of the retiring Azure Cache for Redis tiers.
 */
export type RedisSku = RedisCacheSku | (string & {});

/** The SKU name families azurerm accepts for `azurerm_managed_redis` (Enterprise_ SKUs are refused there). */
export const MANAGED_REDIS_SKU = /^(Balanced_B|MemoryOptimized_M|ComputeOptimized_X|FlashOptimized_A)\d+$/;
export const DEFAULT_MANAGED_REDIS_SKU = 'Balanced_B1';

export function isRedisCacheSku(sku: string): sku is RedisCacheSku {
  return (REDIS_SKUS as readonly string[]).includes(sku);
}

/** Sizes each Azure Cache for Redis family offers: C0-C6 for Basic and Standard, P1-P5 for Premium. */
export const REDIS_CAPACITY: Record<RedisCacheSku, { readonly min: number; readonly max: number }> = {
  Basic: { min: 0, max: 6 },
  Standard: { min: 0, max: 6 },
  Premium: { min: 1, max: 5 },
};

export interface AzureFleetRedisProps {
  readonly resourceGroupName: string;
  readonly location: string;
  /** Global across Azure (checked by the fleet). */
  readonly name: string;
  readonly skuName: RedisSku;
  /** Azure Cache for Redis only. */
  readonly capacity: number;
  /** Whether the Redis answers on its public endpoint (false with a private endpoint). */
  readonly publicNetworkAccess: boolean;
  readonly tags?: Record<string, string>;
}

export class AzureFleetRedis extends Construct {
  /** Set for Azure Managed Redis. */
  public readonly managedRedis?: ManagedRedis;
  /** Set for Azure Cache for Redis. */
  public readonly cache?: RedisCache;
  /** The resource a private endpoint attaches to, and its sub-resource name. */
  public readonly resourceId: string;
  public readonly privateLinkGroup: 'redisEnterprise' | 'redisCache';
  /**
   * `rediss://:<key>@<host>:<tls port>` as a Terraform expression: the key is URL-encoded by
   * Terraform at apply time (access keys may hold `/`, `+` and `=`) and never appears in the JSON.
   */
  public readonly url: string;
  /** `<host>:<TLS port>`, for clients that take the address apart from the key (KEDA's Redis scaler). */
  public readonly address: string;
  /** The primary access key (sensitive; a Terraform expression). */
  public readonly accessKey: string;

  constructor(scope: Construct, id: string, props: AzureFleetRedisProps) {
    super(scope, id);
    if (isRedisCacheSku(props.skuName)) {
      const cache = new RedisCache(this, 'Cache', {
        name: props.name,
        resourceGroupName: props.resourceGroupName,
        location: props.location,
        skuName: props.skuName,
        family: props.skuName === 'Premium' ? 'P' : 'C',
        capacity: props.capacity,
        minimumTlsVersion: '1.2',
        nonSslPortEnabled: false,
        redisVersion: '6',
        publicNetworkAccessEnabled: props.publicNetworkAccess ? undefined : false,
        tags: props.tags,
      });
      this.cache = cache;
      this.resourceId = cache.id;
      this.privateLinkGroup = 'redisCache';
      this.address = `${cache.hostname}:${Token.asString(cache.sslPort)}`;
      this.accessKey = cache.primaryAccessKey;
      this.url = `rediss://:${Fn.urlencode(cache.primaryAccessKey)}@${this.address}`;
      return;
    }
    const redis = new ManagedRedis(this, 'ManagedRedis', {
      name: props.name,
      resourceGroupName: props.resourceGroupName,
      location: props.location,
      skuName: props.skuName,
      publicNetworkAccess: props.publicNetworkAccess ? undefined : 'Disabled',
      defaultDatabase: {
        // The agents authenticate with the access key in their URL (Entra ID tokens are not supported by them).
        accessKeysAuthenticationEnabled: true,
        clientProtocol: 'Encrypted',
        // One endpoint speaking the classic protocol; a fleet's keys share one hash slot anyway.
        clusteringPolicy: 'EnterpriseCluster',
        // Leases, owners and locks must never be evicted to make room.
        evictionPolicy: 'NoEviction',
      },
      tags: props.tags,
    });
    this.managedRedis = redis;
    this.resourceId = redis.id;
    this.privateLinkGroup = 'redisEnterprise';
    const database = redis.defaultDatabase;
    this.address = `${redis.hostname}:${Token.asString(database.port)}`;
    this.accessKey = database.primaryAccessKey;
    this.url = `rediss://:${Fn.urlencode(database.primaryAccessKey)}@${this.address}`;
  }
}
