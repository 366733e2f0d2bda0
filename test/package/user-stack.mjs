// A user's own cdktf program, written against the installed package only (no repository paths).

import { ConfigMapV1 } from '@cdktf/provider-kubernetes/lib/config-map-v1/index.js';
import { KubernetesProvider } from '@cdktf/provider-kubernetes/lib/provider/index.js';
import { App, LocalBackend, TerraformStack } from 'cdktf';
import {
  KubernetesFleetRedis,
  KubernetesSessionFleet,
  KubernetesSessionStorage,
  resolveFleetPolicy,
} from 'sessionfleet';
import { parsePolicy } from 'sessionfleet/policy';

const app = new App();
const stack = new TerraformStack(app, 'user');
new LocalBackend(stack, { path: 'terraform.user.tfstate' });
new KubernetesProvider(stack, 'Kubernetes', {});
const { policy } = resolveFleetPolicy(stack, { affinity: { type: 'header', headerName: 'x-user-session' } });
parsePolicy(policy);
new ConfigMapV1(stack, 'Policy', { metadata: { name: 'policy' }, data: { 'policy.json': JSON.stringify(policy) } });

const fleet = new KubernetesSessionFleet(stack, 'McpFleet', {
  policy: { affinity: { type: 'mcp-streamable-http' }, maxInstances: 3 },
  app: { image: 'example/mcp-server:1.0.0', port: 3000 },
  storage: KubernetesSessionStorage.ephemeral(),
  redis: KubernetesFleetRedis.external({ secretName: 'redis', key: 'url' }),
});
if (!fleet.instances?.deployment || fleet.policy.maxInstances !== 3) {
  throw new Error('KubernetesSessionFleet did not build its Deployment');
}
app.synth();
console.log('user stack synthesized');
