/**
 * Private endpoints for what an Azure fleet stands on (`privateEndpoints`): the Redis and the
 * session-state storage account get an address in the fleet's virtual network, a private DNS zone
 * linked to that network resolves their usual host names to it, and their public endpoints are
 * closed (the Redis always; the storage account unless `keepStoragePublic`).
 * @see https://learn.microsoft.com/azure/private-link/private-endpoint-dns
 */
import { PrivateDnsZone } from '@cdktf/provider-azurerm/lib/private-dns-zone/index.js';
import { PrivateDnsZoneVirtualNetworkLink } from '@cdktf/provider-azurerm/lib/private-dns-zone-virtual-network-link/index.js';
import { PrivateEndpoint } from '@cdktf/provider-azurerm/lib/private-endpoint/index.js';
import { Construct } from 'constructs';

/** Where the fleet's private endpoints go. */
export interface AzurePrivateEndpointsOptions {
  /** Subnet for the endpoints' network interfaces (not the one delegated to the containers). */
  readonly subnetId: string;
  /** The virtual network the private DNS zones are linked to: the fleet's own. */
  readonly virtualNetworkId: string;
  /**
   * Leave the storage account's public endpoint open (the endpoint is still created). Azure Files
   * is mounted by the platform's own hosts; if your region's mounts fail with public access
   * closed, set this and restrict the account with its network rules instead.
   * @default false
   */
  readonly keepStoragePublic?: boolean;
}

/** The private DNS zone of each sub-resource. */
const ZONES = {
  redisEnterprise: 'privatelink.redis.azure.net',
  redisCache: 'privatelink.redis.cache.windows.net',
  file: 'privatelink.file.core.windows.net',
} as const;

export interface AzureFleetPrivateEndpointsProps extends AzurePrivateEndpointsOptions {
  readonly resourceGroupName: string;
  readonly location: string;
  readonly namePrefix: string;
  readonly storageAccountId: string;
  /** The fleet's Redis, when it created one. */
  readonly redis?: { readonly resourceId: string; readonly privateLinkGroup: 'redisEnterprise' | 'redisCache' };
  readonly tags?: Record<string, string>;
}

export class AzureFleetPrivateEndpoints extends Construct {
  public readonly endpoints: readonly PrivateEndpoint[];
  public readonly zones: readonly PrivateDnsZone[];

  constructor(scope: Construct, id: string, props: AzureFleetPrivateEndpointsProps) {
    super(scope, id);
    const targets: { id: string; resourceId: string; group: keyof typeof ZONES }[] = [
      { id: 'Storage', resourceId: props.storageAccountId, group: 'file' },
    ];
    if (props.redis !== undefined)
      targets.push({ id: 'Redis', resourceId: props.redis.resourceId, group: props.redis.privateLinkGroup });
    const endpoints: PrivateEndpoint[] = [];
    const zones: PrivateDnsZone[] = [];
    for (const target of targets) {
      const zone = new PrivateDnsZone(this, `${target.id}Zone`, {
        name: ZONES[target.group],
        resourceGroupName: props.resourceGroupName,
        tags: props.tags,
      });
      new PrivateDnsZoneVirtualNetworkLink(this, `${target.id}ZoneLink`, {
        name: `${props.namePrefix}-${target.group.toLowerCase()}`,
        resourceGroupName: props.resourceGroupName,
        privateDnsZoneName: zone.name,
        virtualNetworkId: props.virtualNetworkId,
        tags: props.tags,
      });
      endpoints.push(
        new PrivateEndpoint(this, `${target.id}Endpoint`, {
          name: `${props.namePrefix}-${target.group.toLowerCase()}-pe`,
          resourceGroupName: props.resourceGroupName,
          location: props.location,
          subnetId: props.subnetId,
          privateServiceConnection: {
            name: `${props.namePrefix}-${target.group.toLowerCase()}`,
            privateConnectionResourceId: target.resourceId,
            subresourceNames: [target.group],
            isManualConnection: false,
          },
          privateDnsZoneGroup: { name: 'default', privateDnsZoneIds: [zone.id] },
          tags: props.tags,
        }),
      );
      zones.push(zone);
    }
    this.endpoints = endpoints;
    this.zones = zones;
  }
}
