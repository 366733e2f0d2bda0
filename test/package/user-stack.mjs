// A user's own cdktf program, written against the installed package only (no repository paths).

import { ConfigMapV1 } from '@cdktf/provider-kubernetes/lib/config-map-v1/index.js';
import { KubernetesProvider } from '@cdktf/provider-kubernetes/lib/provider/index.js';
import { App, LocalBackend, TerraformStack } from 'cdktf';
import { resolveFleetPolicy } from 'sessionfleet';
import { parsePolicy } from 'sessionfleet/policy';

const app = new App();
const stack = new TerraformStack(app, 'user');
new LocalBackend(stack, { path: 'terraform.user.tfstate' });
new KubernetesProvider(stack, 'Kubernetes', {});
const { policy } = resolveFleetPolicy(stack, { affinity: { type: 'header', headerName: 'x-user-session' } });
parsePolicy(policy);
new ConfigMapV1(stack, 'Policy', { metadata: { name: 'policy' }, data: { 'policy.json': JSON.stringify(policy) } });
app.synth();
console.log('user stack synthesized');
