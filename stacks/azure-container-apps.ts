/**
 * An MCP server (Streamable HTTP) on Azure Container Apps with session isolation: every session
 * gets a replica of its own, Container Apps adds replicas as sessions arrive (up to the policy's
 * maxInstances) and a replica is recycled after its session ends.
 */
import { DataAzurermContainerRegistry } from '@cdktf/provider-azurerm/lib/data-azurerm-container-registry/index.js';
import { TerraformVariable } from 'cdktf';
import type { Construct } from 'constructs';
import { AzureContainerAppsSessionFleet } from '../constructs/index.js';

export function mcpServerOnContainerApps(scope: Construct, location: string): AzureContainerAppsSessionFleet {
  // The private registry holding the server's image: the fleet pulls from it with its own managed
  // identity (granted AcrPull on this registry), so no registry password exists anywhere.
  const registry = new DataAzurermContainerRegistry(scope, 'McpRegistry', {
    name: new TerraformVariable(scope, 'container_registry_name', {
      type: 'string',
      description: 'Name of the Azure Container Registry holding mcp-server:1.0.0',
    }).stringValue,
    resourceGroupName: new TerraformVariable(scope, 'container_registry_resource_group', {
      type: 'string',
      description: 'Resource group of that registry',
    }).stringValue,
  });
  return new AzureContainerAppsSessionFleet(scope, 'McpFleet', {
    // No resourceGroupName: the fleet creates its own group in this region.
    location,
    registryServer: registry.loginServer,
    containerRegistryId: registry.id,
    app: {
      image: `${registry.loginServer}/mcp-server:1.0.0`,
      port: 3000,
      // Given explicitly so the construct can wrap it: the server gets SIGTERM only once its agent
      // has drained, and is restarted with the agent when the replica recycles after its session.
      command: ['node', '/app/server.js'],
      // Session isolation needs an instance with at least 2 vCPU (checked at synth time).
      cpu: 2,
    },
    // Where this server persists its sessions; on the Azure Files share, any replica can read them.
    sessionStatePath: '/var/lib/mcp-server/sessions',
    policy: {
      isolation: 'session',
      affinity: { type: 'mcp-streamable-http' },
      sessionLifetimeSeconds: 3600,
      sessionIdleTimeoutSeconds: 600,
      recycleAfterSession: true,
      minInstances: 2,
      maxInstances: 20,
    },
    adminToken: new TerraformVariable(scope, 'mcp_admin_token', {
      type: 'string',
      sensitive: true,
      description: "Bearer token of the agents' admin API",
    }),
  });
}
