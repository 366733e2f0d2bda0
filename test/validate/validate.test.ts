/**
 * Independent validation (issue 16): the `kubernetes_*` resources of every example stack and of
 * fleets composed the way the docs suggest, converted to manifests by test/validate/manifests.ts
 * (no constructs code), validated against the Kubernetes OpenAPI schema (`kubernetes-models`), the
 * Pod Security Standards "restricted" profile and issue 16's rules. Fast tier: no processes.
 */
import { NamespaceV1 } from '@cdktf/provider-kubernetes/lib/namespace-v1/index.js';
import { Testing } from 'cdktf';
import type { Construct } from 'constructs';
import { describe, expect, it } from 'vitest';
import {
  KubernetesFleetRedis,
  KubernetesSessionFleet,
  KubernetesSessionStorage,
  KubernetesTrustedProxies,
} from '../../constructs/index.js';
import { KubernetesExampleStack } from '../../stacks/kubernetes.js';
import { restrictedProblems, ruleProblems, schemaProblems } from './checks.js';
import { type Json, manifestsOf } from './manifests.js';

const MCP_APP = { image: 'your-registry/mcp-server:1.0.0', port: 3000, healthPath: '/health' };
const SHARED_REDIS = KubernetesFleetRedis.external({ secretName: 'shared-redis', key: 'url' });

/** Fleets composed the way the docs suggest, each in its own stack. */
const COMPOSED: Record<string, (scope: Construct) => void> = {
  'several tenants': (scope) => {
    new KubernetesSessionFleet(scope, 'PerUser', {
      policy: { isolation: 'tenant', affinity: { type: 'copilot-jsonrpc' }, maxInstances: 3 },
      app: { image: 'your-registry/copilot-cli:1.0.102', args: ['--headless', '--port', '4321'], port: 4321 },
      tenants: [
        { tenantId: 'alice', principals: { secretName: 'alice-principals', key: 'principals.json' } },
        { tenantId: 'bob', principals: { secretName: 'bob-principals', key: 'principals.json' } },
      ],
    });
  },
  recycling: (scope) => {
    new KubernetesSessionFleet(scope, 'Sandboxes', {
      policy: { isolation: 'session', affinity: { type: 'mcp-streamable-http' } },
      app: MCP_APP,
      recycleAfterSession: true,
    });
  },
  'external Redis shared by two fleets': (scope) => {
    for (const id of ['Search', 'Tools']) {
      new KubernetesSessionFleet(scope, id, {
        policy: { affinity: { type: 'mcp-streamable-http' }, maxInstances: 5 },
        app: MCP_APP,
        storage: KubernetesSessionStorage.ephemeral(),
        redis: SHARED_REDIS,
      });
    }
  },
  'principal header': (scope) => {
    new KubernetesSessionFleet(scope, 'Web', {
      policy: { affinity: { type: 'cookie' }, maxInstances: 4 },
      app: MCP_APP,
      principalHeader: 'x-authenticated-user',
      trustedProxies: KubernetesTrustedProxies.from({ namespaces: ['auth'], cidrs: ['10.0.0.0/8'] }),
    });
  },
  'restricted namespace': (scope) => {
    const namespace = new NamespaceV1(scope, 'Namespace', {
      metadata: { name: 'fleet', labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } },
    });
    new KubernetesSessionFleet(scope, 'Restricted', {
      namespace: namespace.metadata.name,
      policy: { affinity: { type: 'header', headerName: 'x-session' }, maxInstances: 4 },
      app: { ...MCP_APP, securityContext: { runAsUser: 10001, readOnlyRootFilesystem: true } },
      storage: KubernetesSessionStorage.perInstanceVolume({ sizeGiB: 2 }),
    });
  },
};

const STACKS: Record<string, Json> = {
  'example stack "kubernetes"': JSON.parse(Testing.synth(new KubernetesExampleStack(Testing.app(), 'kubernetes'))),
  ...Object.fromEntries(
    Object.entries(COMPOSED).map(([name, build]) => [`composed: ${name}`, JSON.parse(Testing.synthScope(build))]),
  ),
};

describe.each(Object.entries(STACKS))('%s', (_name, stack) => {
  const manifests = manifestsOf(stack);

  it('has Kubernetes resources to check', () => {
    expect(manifests.length).toBeGreaterThan(3);
  });

  it('conforms to the Kubernetes OpenAPI schema', async () => {
    const problems = (await Promise.all(manifests.map(schemaProblems))).flat();
    expect(problems).toEqual([]);
  });

  it('runs every pod under the Pod Security Standards "restricted" profile', () => {
    expect(manifests.flatMap(restrictedProblems)).toEqual([]);
  });

  it("keeps issue 16's rules", () => {
    expect(ruleProblems(manifests, stack)).toEqual([]);
  });
});

describe('the validator itself', () => {
  it('finds what is wrong in a stack that breaks the rules', async () => {
    const stack = {
      resource: {
        kubernetes_persistent_volume_claim_v1: { Claim: { metadata: { name: 'state' }, spec: {} } },
        kubernetes_deployment_v1: {
          Bad: {
            metadata: { name: 'bad', namespace: 'default' },
            spec: {
              replicas: 'two',
              selector: { match_labels: { app: 'bad' } },
              template: {
                metadata: { labels: { app: 'bad' } },
                spec: {
                  container: [
                    {
                      name: 'app',
                      image: 'app',
                      security_context: { privileged: true },
                      startup_probe: { http_get: { path: '/healthz', port: '9090' } },
                    },
                    {
                      name: 'agent',
                      image: 'agent',
                      args: ['--principal-header', 'x-user'],
                      env: [{ name: 'SESSIONFLEET_REDIS', value: 'redis://r' }],
                      liveness_probe: { http_get: { path: '/healthz', port: '9090' } },
                    },
                  ],
                  volume: [{ name: 'state', persistent_volume_claim: { claim_name: 'state' } }],
                },
              },
            },
          },
        },
        kubernetes_network_policy_v1: {
          Open: {
            metadata: { name: 'bad' },
            spec: {
              pod_selector: { match_labels: { app: 'bad' } },
              policy_types: ['Ingress'],
              ingress: [{ ports: [{ port: '8080', protocol: 'TCP' }] }],
            },
          },
        },
      },
    };
    const manifests = manifestsOf(stack);
    const deployment = manifests.find((m) => m.manifest.kind === 'Deployment')!;
    expect(await schemaProblems(deployment)).toEqual([
      'kubernetes_deployment_v1.Bad: data/spec/replicas must be integer',
    ]);
    expect(restrictedProblems(deployment)).toEqual(
      expect.arrayContaining([
        'kubernetes_deployment_v1.Bad: container app is privileged',
        'kubernetes_deployment_v1.Bad: container app must drop ALL capabilities',
        'kubernetes_deployment_v1.Bad: container agent must run as non-root (runAsNonRoot true)',
      ]),
    );
    expect(ruleProblems(manifests, stack)).toEqual([
      'kubernetes_deployment_v1.Bad: uses Redis but passes no --fleet',
      'kubernetes_deployment_v1.Bad: takes --principal-header from any pod: the client port is open and no --trusted-proxies is set',
      'kubernetes_deployment_v1.Bad: app startup probe must ask /startupz',
      'kubernetes_deployment_v1.Bad: agent liveness probe must ask /livez',
      'kubernetes_deployment_v1.Bad: agent does not mount the shared state volume state',
      'kubernetes_deployment_v1.Bad: claim state is named literally, not by reference',
    ]);
  });

  /** A Terraform reference, as the constructs name a claim (the validator's own rule). */
  const TERRAFORM_REFERENCE = ['$', '{kubernetes_persistent_volume_claim_v1.Claim.metadata[0].name}'].join('');

  it('finds a Copilot fleet whose app mounts the shared session state (issue 14 §1: the layout before staging)', () => {
    const stack = {
      resource: {
        kubernetes_persistent_volume_claim_v1: { Claim: { metadata: { name: 'state' }, spec: {} } },
        kubernetes_deployment_v1: {
          Copilot: {
            metadata: { name: 'copilot', namespace: 'default' },
            spec: {
              selector: { match_labels: { app: 'copilot' } },
              template: {
                metadata: { labels: { app: 'copilot' } },
                spec: {
                  container: [
                    {
                      name: 'app',
                      image: 'app',
                      startup_probe: { http_get: { path: '/startupz', port: '9090' } },
                      volume_mount: [{ name: 'state', mount_path: '/root/.copilot/session-state' }],
                    },
                    {
                      name: 'agent',
                      image: 'agent',
                      args: [
                        '--upstream',
                        'tcp://127.0.0.1:4321',
                        '--session-state-dir',
                        '/root/.copilot/session-state',
                      ],
                      liveness_probe: { http_get: { path: '/livez', port: '9090' } },
                      volume_mount: [{ name: 'state', mount_path: '/root/.copilot/session-state' }],
                    },
                  ],
                  volume: [
                    {
                      name: 'state',
                      persistent_volume_claim: {
                        claim_name: TERRAFORM_REFERENCE,
                      },
                    },
                  ],
                },
              },
            },
          },
        },
      },
    };
    expect(ruleProblems(manifestsOf(stack), stack)).toEqual([
      "kubernetes_deployment_v1.Copilot: app mounts the shared state volume state: every user's sessions are readable from the app",
      'kubernetes_deployment_v1.Copilot: agent stages no session state: no --app-state-dir on a private volume of the pod',
    ]);
  });
});
