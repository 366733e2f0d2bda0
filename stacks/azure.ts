import { AzurermProvider } from '@cdktf/provider-azurerm/lib/provider/index.js';
import { ResourceGroup } from '@cdktf/provider-azurerm/lib/resource-group/index.js';
import { TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import { useRelativeLocalBackend } from './backend.js';

/** Azure examples: one resource group holds the fleets. */
export class AzureExampleStack extends TerraformStack {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    useRelativeLocalBackend(this, id);
    new AzurermProvider(this, 'Azurerm', { features: [{}] });
    new ResourceGroup(this, 'ResourceGroup', { name: 'sessionfleet-examples', location: 'westeurope' });
  }
}
