/**
 * The Copilot SDK scaling guide's Azure Container Instances deployment, rebuilt with the construct:
 * Copilot CLI instances in headless mode, an Azure Files share at ~/.copilot/session-state, and now
 * the sessionfleet agent beside each instance (affinity on the CLI's JSON-RPC session ids, quotas,
 * one owner per session) with Redis between the agents.
 */
import { DataAzurermKeyVaultSecret } from '@cdktf/provider-azurerm/lib/data-azurerm-key-vault-secret/index.js';
import type { ResourceGroup } from '@cdktf/provider-azurerm/lib/resource-group/index.js';
import { Subnet } from '@cdktf/provider-azurerm/lib/subnet/index.js';
import { VirtualNetwork } from '@cdktf/provider-azurerm/lib/virtual-network/index.js';
import { TerraformVariable } from 'cdktf';
import type { Construct } from 'constructs';
import { AzureContainerInstancesSessionFleet } from '../constructs/index.js';

const COPILOT_PORT = 4321;

export function copilotOnContainerInstances(
  scope: Construct,
  resourceGroup: ResourceGroup,
  location: string,
): AzureContainerInstancesSessionFleet {
  // Secrets stay in Key Vault: the synthesized JSON holds only data-source references.
  const keyVaultId = new TerraformVariable(scope, 'key_vault_id', {
    type: 'string',
    description:
      'ID of the Key Vault holding copilot-github-token, copilot-connection-token and sessionfleet-principals',
  });
  const fromKeyVault = (id: string, name: string) =>
    new DataAzurermKeyVaultSecret(scope, id, { name, keyVaultId: keyVaultId.stringValue });
  // The CLI accepts only clients presenting this token; the agent presents it (upstreamToken).
  const connectionToken = fromKeyVault('CopilotConnectionToken', 'copilot-connection-token');

  // The recommended mode: the instances have private IPs in this network and reach each other
  // there; Copilot clients connect from inside it (a peered network, a VPN, a jump host).
  const network = new VirtualNetwork(scope, 'CopilotNetwork', {
    name: 'sessionfleet-copilot-vnet',
    resourceGroupName: resourceGroup.name,
    location,
    addressSpace: ['10.40.0.0/16'],
  });
  const instancesSubnet = new Subnet(scope, 'CopilotInstancesSubnet', {
    name: 'copilot-instances',
    resourceGroupName: resourceGroup.name,
    virtualNetworkName: network.name,
    addressPrefixes: ['10.40.1.0/24'],
    delegation: [
      {
        name: 'container-instances',
        serviceDelegation: {
          name: 'Microsoft.ContainerInstance/containerGroups',
          actions: ['Microsoft.Network/virtualNetworks/subnets/action'],
        },
      },
    ],
  });

  // The Redis and the session-state storage answer only inside the network, through these endpoints.
  const endpointsSubnet = new Subnet(scope, 'CopilotEndpointsSubnet', {
    name: 'copilot-endpoints',
    resourceGroupName: resourceGroup.name,
    virtualNetworkName: network.name,
    addressPrefixes: ['10.40.2.0/24'],
  });

  return new AzureContainerInstancesSessionFleet(scope, 'CopilotFleet', {
    resourceGroupName: resourceGroup.name,
    location,
    app: {
      // Built and pushed as in the guide ("your-registry/copilot-cli"); pulled with a password given at apply time.
      image: 'myregistry.azurecr.io/copilot-cli:1.0.102',
      // The CLI listens on loopback; the agent in the same container group reaches it there.
      command: ['copilot', '--headless', '--port', String(COPILOT_PORT)],
      port: COPILOT_PORT,
      // The CLI keeps sessions in $HOME/.copilot/session-state; a HOME of its own keeps the share's
      // mount apart from the rest of the image (the guide mounts /root/.copilot/session-state).
      env: { HOME: '/copilot' },
      secretEnv: {
        GH_TOKEN: fromKeyVault('CopilotGitHubToken', 'copilot-github-token'),
        COPILOT_CONNECTION_TOKEN: connectionToken,
      },
    },
    registryServer: 'myregistry.azurecr.io',
    registryUsername: 'sessionfleet-pull',
    registryPassword: new TerraformVariable(scope, 'registry_password', { type: 'string', sensitive: true }),
    sessionStatePath: '/copilot/.copilot/session-state',
    upstreamToken: connectionToken,
    // Client token -> principal: each user resumes only their own sessions.
    principals: fromKeyVault('Principals', 'sessionfleet-principals'),
    shareName: 'copilot-sessions',
    shareQuotaGiB: 100,
    policy: {
      isolation: 'shared',
      affinity: { type: 'copilot-jsonrpc' },
      sessionsPerInstance: 20,
      // The CLI drops a session after 30 minutes without activity; end ours at the same time.
      sessionIdleTimeoutSeconds: 1800,
      maxInstances: 3,
    },
    // Container Instances does not autoscale: three instances, always.
    instanceCount: 3,
    subnetIds: [instancesSubnet.id],
    privateEndpoints: { subnetId: endpointsSubnet.id, virtualNetworkId: network.id },
  });
}
