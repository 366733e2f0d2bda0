/**
 * The Redis the agents of an Azure fleet coordinate through (instance leases, session owners,
 * placement, locks): an Azure Cache for Redis reachable over TLS only.
 */
import { RedisCache } from '@cdktf/provider-azurerm/lib/redis-cache/index.js';
import { Fn, Token } from 'cdktf';
import { Construct } from 'constructs';

export const REDIS_SKUS = ['Basic', 'Standard', 'Premium'] as const;
export type RedisSku = (typeof REDIS_SKUS)[number];

/** Sizes each SKU family offers: C0-C6 for Basic and Standard, P1-P5 for Premium. */
export const REDIS_CAPACITY: Record<RedisSku, { readonly min: number; readonly max: number }> = {
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
  readonly capacity: number;
  readonly tags?: Record<string, string>;
}

export class AzureFleetRedis extends Construct {
  public readonly cache: RedisCache;
  /**
   * `rediss://:<key>@<host>:<tls port>` as a Terraform expression: the key is URL-encoded by
   * Terraform at apply time (access keys may hold `/`, `+` and `=`) and never appears in the JSON.
   */
  public readonly url: string;

  constructor(scope: Construct, id: string, props: AzureFleetRedisProps) {
    super(scope, id);
    this.cache = new RedisCache(this, 'Cache', {
      name: props.name,
      resourceGroupName: props.resourceGroupName,
      location: props.location,
      skuName: props.skuName,
      family: props.skuName === 'Premium' ? 'P' : 'C',
      capacity: props.capacity,
      minimumTlsVersion: '1.2',
      nonSslPortEnabled: false,
      redisVersion: '6',
      tags: props.tags,
    });
    const key = Fn.urlencode(this.cache.primaryAccessKey);
    this.url = `rediss://:${key}@${this.cache.hostname}:${Token.asString(this.cache.sslPort)}`;
  }
}
