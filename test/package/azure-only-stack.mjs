// An Azure user's program: only @cdktf/provider-azurerm is installed, so it imports the Azure subpath.
import { AzurermProvider } from '@cdktf/provider-azurerm/lib/provider/index.js';
import { App, LocalBackend, TerraformStack, TerraformVariable } from 'cdktf';
import { AzureContainerInstancesSessionFleet } from 'sessionfleet/azure';

const app = new App();
const stack = new TerraformStack(app, 'azure-user');
new LocalBackend(stack, { path: 'terraform.azure-user.tfstate' });
new AzurermProvider(stack, 'Azurerm', { features: [{}] });
const token = new TerraformVariable(stack, 'ConnectionToken', { type: 'string', sensitive: true });
new AzureContainerInstancesSessionFleet(stack, 'CopilotFleet', {
  location: 'westeurope',
  name: 'user-copilot',
  app: {
    image: 'example/copilot-cli:1.0.102',
    command: ['copilot', '--headless', '--port', '4321'],
    port: 4321,
    secretEnv: { COPILOT_CONNECTION_TOKEN: token },
  },
  upstreamToken: token,
  policy: { affinity: { type: 'copilot-jsonrpc' }, maxInstances: 2 },
  instanceCount: 2,
  // The recommended mode: groups in a virtual network, reached by their private IPs.
  subnetIds: [
    '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/fleet/subnets/aci',
  ],
});
app.synth();
console.log('azure-only stack synthesized');
