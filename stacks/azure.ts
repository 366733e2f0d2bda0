import { AzurermProvider } from '@cdktf/provider-azurerm/lib/provider/index.js';
import { ResourceGroup } from '@cdktf/provider-azurerm/lib/resource-group/index.js';
import { TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import { mcpServerOnContainerApps } from './azure-container-apps.js';
import { copilotOnContainerInstances } from './azure-container-instances.js';
import { useRelativeLocalBackend } from './backend.js';

const LOCATION = 'westeurope';

/**
 * Azure examples: the Copilot guide's Container Instances fleet in an existing resource group, and
 * an MCP server on Container Apps that creates its own. Storage account, Redis cache and DNS names
 * are global across Azure and derived from the construct path; set `name`, `storageAccountName`
 * and `redisCacheName` to your own before you apply a copy of this stack.
 */
export class AzureExampleStack extends TerraformStack {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    useRelativeLocalBackend(this, id);
    new AzurermProvider(this, 'Azurerm', { features: [{}] });
    const resourceGroup = new ResourceGroup(this, 'ResourceGroup', {
      name: 'sessionfleet-examples',
      location: LOCATION,
    });
    copilotOnContainerInstances(this, resourceGroup, LOCATION);
    mcpServerOnContainerApps(this, LOCATION);
  }
}
