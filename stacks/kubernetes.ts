import { NamespaceV1 } from '@cdktf/provider-kubernetes/lib/namespace-v1/index.js';
import { KubernetesProvider } from '@cdktf/provider-kubernetes/lib/provider/index.js';
import { TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import { useRelativeLocalBackend } from './backend.js';

/** Kubernetes examples: the fleets live in one namespace of the cluster the kubeconfig names. */
export class KubernetesExampleStack extends TerraformStack {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    useRelativeLocalBackend(this, id);
    new KubernetesProvider(this, 'Kubernetes', { configPath: '~/.kube/config' });
    new NamespaceV1(this, 'Namespace', { metadata: { name: 'sessionfleet-examples' } });
  }
}
