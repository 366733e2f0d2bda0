import { NamespaceV1 } from '@cdktf/provider-kubernetes/lib/namespace-v1/index.js';
import { KubernetesProvider } from '@cdktf/provider-kubernetes/lib/provider/index.js';
import { TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import {
  KubernetesFleetRedis,
  KubernetesSessionFleet,
  KubernetesSessionStorage,
  KubernetesTrustedProxies,
} from '../constructs/index.js';
import { useRelativeLocalBackend } from './backend.js';

/**
 * Kubernetes examples, in one namespace of the cluster the kubeconfig names. The Secrets they
 * reference (copilot-secrets, copilot-principals, mcp-redis) are yours to create: no secret value
 * is ever part of the synthesized configuration.
 */
export class KubernetesExampleStack extends TerraformStack {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    useRelativeLocalBackend(this, id);
    new KubernetesProvider(this, 'Kubernetes', { configPath: '~/.kube/config' });
    const namespace = new NamespaceV1(this, 'Namespace', { metadata: { name: 'sessionfleet-examples' } });

    // The Copilot guide's Deployment (3 replicas, a PVC at ~/.copilot/session-state, the GitHub
    // token from a Secret, `copilot --headless` on port 4321) with the agent in front. The CLI is
    // no longer started with `--host 0.0.0.0`: it stays on loopback, reachable only through the agent.
    new KubernetesSessionFleet(this, 'CopilotCli', {
      namespace: namespace.metadata.name,
      policy: {
        affinity: { type: 'copilot-jsonrpc' },
        minInstances: 3,
        maxInstances: 10,
      },
      app: {
        image: 'your-registry/copilot-cli:1.0.102',
        args: ['--headless', '--port', '4321'],
        port: 4321,
        secretEnv: { COPILOT_GITHUB_TOKEN: { secretName: 'copilot-secrets', key: 'github-token' } },
      },
      // Any StorageClass that offers ReadWriteMany (azurefile-csi on AKS, efs-sc on EKS, NFS).
      storage: KubernetesSessionStorage.sharedVolume({ sizeGiB: 20, storageClassName: 'azurefile-csi' }),
      upstreamToken: { secretName: 'copilot-secrets', key: 'connection-token' },
      principals: { secretName: 'copilot-principals', key: 'principals.json' },
      metricsScrapeNamespaces: ['monitoring'],
    });

    // An MCP server fleet with Streamable HTTP affinity: sessions live in the servers' memory, so
    // no volume; an existing Redis; users named by the authenticating proxy in front.
    new KubernetesSessionFleet(this, 'McpServers', {
      namespace: namespace.metadata.name,
      policy: {
        affinity: { type: 'mcp-streamable-http' },
        sessionsPerInstance: 50,
        minInstances: 2,
        maxInstances: 20,
        sessionIdleTimeoutSeconds: 900,
      },
      app: {
        image: 'your-registry/mcp-server:1.0.0',
        port: 3000,
        env: { HOST: '127.0.0.1', PORT: '3000' },
        cpuRequest: '500m',
        memoryRequestMiB: 512,
      },
      storage: KubernetesSessionStorage.ephemeral(),
      redis: KubernetesFleetRedis.external({ secretName: 'mcp-redis', key: 'url' }),
      principalHeader: 'x-authenticated-user',
      // Only the authenticating proxy may name the principal: its pods may reach the agents, and
      // its subnet is what the agents accept the header from.
      trustedProxies: KubernetesTrustedProxies.from({
        namespaces: ['auth'],
        podSelector: { 'app.kubernetes.io/name': 'oauth2-proxy' },
        cidrs: ['10.0.0.0/8'],
      }),
      metricsScrapeNamespaces: ['monitoring'],
    });
  }
}
