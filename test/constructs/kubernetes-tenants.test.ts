import type { Construct } from 'constructs';
import { describe, expect, it } from 'vitest';
import {
  type KubernetesFleetInstances,
  KubernetesFleetRedis,
  KubernetesSessionFleet,
  KubernetesSessionStorage,
  KubernetesTrustedProxies,
  TENANT_LABEL,
} from '../../constructs/index.js';
import {
  container,
  envOf,
  type Json,
  named,
  nameRef,
  podSpec,
  resourceCounts,
  resourcesOf,
  synth,
  tf,
} from './kubernetes-test-helpers.js';

const selector = (tenant: string, component = 'instance') => ({
  'app.kubernetes.io/component': component,
  'app.kubernetes.io/instance': 'per-user',
  'app.kubernetes.io/name': 'sessionfleet',
  [TENANT_LABEL]: tenant,
});

describe('tenant isolation: the per-user CLI, declared', () => {
  let fleet: KubernetesSessionFleet | undefined;
  let carol: KubernetesFleetInstances | undefined;
  const s = synth((scope: Construct) => {
    fleet = new KubernetesSessionFleet(scope, 'PerUser', {
      policy: { isolation: 'tenant', affinity: { type: 'copilot-jsonrpc' }, maxInstances: 2 },
      app: {
        image: 'your-registry/copilot-cli:1.0.102',
        args: ['--headless', '--port', '4321'],
        port: 4321,
        env: { COPILOT_MODEL: 'default' },
        secretEnv: { COPILOT_GITHUB_TOKEN: { secretName: 'shared-token', key: 'token' } },
      },
      upstreamToken: { secretName: 'copilot-connection', key: 'token' },
      tenants: [
        {
          tenantId: 'alice',
          secretEnv: { COPILOT_GITHUB_TOKEN: { secretName: 'alice-github', key: 'token' } },
          principals: { secretName: 'alice-principals', key: 'principals.json' },
        },
        {
          tenantId: 'bob',
          env: { COPILOT_GITHUB_TOKEN: 'not-a-secret-but-a-file-path' },
          storage: KubernetesSessionStorage.sharedVolume({ sizeGiB: 1 }),
          redis: KubernetesFleetRedis.external({ secretName: 'bob-redis', key: 'url' }),
        },
      ],
    });
    carol = fleet.addTenant('carol', {
      secretEnv: { COPILOT_GITHUB_TOKEN: { secretName: 'carol-github', key: 'token' } },
    });
  });

  it('gives each tenant its own Deployment, Service, claim, autoscaler, disruption budget and NetworkPolicy', () => {
    for (const tenant of ['alice', 'bob', 'carol']) {
      const name = `per-user-${tenant}`;
      expect(named(s, 'kubernetes_deployment_v1', name).spec.selector.match_labels).toEqual(selector(tenant));
      expect(named(s, 'kubernetes_service_v1', name).spec.selector).toEqual(selector(tenant));
      expect(named(s, 'kubernetes_persistent_volume_claim_v1', `${name}-session-state`).spec.access_modes).toEqual([
        'ReadWriteMany',
      ]);
      expect(named(s, 'kubernetes_horizontal_pod_autoscaler_v2', name).spec.scale_target_ref.name).toBe(
        nameRef(s, 'kubernetes_deployment_v1', name),
      );
      expect(named(s, 'kubernetes_pod_disruption_budget_v1', name).spec.selector.match_labels).toEqual(
        selector(tenant),
      );
    }
    // One policy for all; one Redis for each tenant that did not bring its own.
    expect(resourceCounts(s)).toEqual({
      kubernetes_config_map_v1: 1,
      kubernetes_deployment_v1: 5,
      kubernetes_horizontal_pod_autoscaler_v2: 3,
      kubernetes_network_policy_v1: 5,
      kubernetes_persistent_volume_claim_v1: 3,
      kubernetes_pod_disruption_budget_v1: 3,
      kubernetes_secret_v1: 2,
      kubernetes_service_v1: 5,
    });
    expect(named(s, 'kubernetes_persistent_volume_claim_v1', 'per-user-bob-session-state').spec.resources).toEqual({
      requests: { storage: '1Gi' },
    });
  });

  it("gives each tenant its own credentials, the tenant's variable replacing the fleet's", () => {
    const app = (tenant: string) => container(named(s, 'kubernetes_deployment_v1', `per-user-${tenant}`), 'app');
    expect(envOf(app('alice'))).toEqual({
      COPILOT_MODEL: 'default',
      COPILOT_GITHUB_TOKEN: { secret_key_ref: { key: 'token', name: 'alice-github' } },
      COPILOT_CONNECTION_TOKEN: { secret_key_ref: { key: 'token', name: 'copilot-connection' } },
    });
    expect(envOf(app('bob'))).toEqual({
      COPILOT_MODEL: 'default',
      COPILOT_GITHUB_TOKEN: 'not-a-secret-but-a-file-path',
      COPILOT_CONNECTION_TOKEN: { secret_key_ref: { key: 'token', name: 'copilot-connection' } },
    });
    expect(envOf(app('carol')).COPILOT_GITHUB_TOKEN).toEqual({
      secret_key_ref: { key: 'token', name: 'carol-github' },
    });
    const alice = named(s, 'kubernetes_deployment_v1', 'per-user-alice');
    expect(podSpec(alice).volume).toContainEqual({
      name: 'principals',
      secret: { items: [{ key: 'principals.json', path: 'principals.json' }], secret_name: 'alice-principals' },
    });
    expect(envOf(container(named(s, 'kubernetes_deployment_v1', 'per-user-bob'), 'agent')).SESSIONFLEET_REDIS).toEqual({
      secret_key_ref: { key: 'url', name: 'bob-redis' },
    });
  });

  it("tells each tenant's agents the tenant they serve (SESSIONFLEET_TENANT, the agent's --tenant)", () => {
    for (const tenant of ['alice', 'bob', 'carol']) {
      const agent = container(named(s, 'kubernetes_deployment_v1', `per-user-${tenant}`), 'agent');
      expect(envOf(agent).SESSIONFLEET_TENANT).toBe(tenant);
      expect(agent.args).not.toContain('--tenant');
    }
  });

  it("denies traffic between tenants: a tenant's agents admit their own pods and pods of no tenant", () => {
    expect(named(s, 'kubernetes_network_policy_v1', 'per-user-alice').spec).toEqual({
      ingress: [
        {
          from: [
            { pod_selector: { match_labels: selector('alice') } },
            {
              namespace_selector: {},
              pod_selector: { match_expressions: [{ key: TENANT_LABEL, operator: 'DoesNotExist' }] },
            },
          ],
          ports: [{ port: '8080', protocol: 'TCP' }],
        },
      ],
      pod_selector: { match_labels: selector('alice') },
      policy_types: ['Ingress'],
    });
    // A tenant's Redis admits that tenant's pods only.
    expect(named(s, 'kubernetes_network_policy_v1', 'per-user-carol-redis').spec.ingress[0].from).toEqual([
      { pod_selector: { match_labels: selector('carol') } },
    ]);
    expect(named(s, 'kubernetes_secret_v1', 'per-user-alice-redis-auth').data).toEqual({ password: tf('uuid()') });
  });

  it('returns what addTenant() created and lists every tenant in order, under stable construct paths', () => {
    expect(carol?.tenantId).toBe('carol');
    expect(carol?.deployment).toBeDefined();
    expect(fleet?.tenants.map((t) => t.tenantId)).toEqual(['alice', 'bob', 'carol']);
    expect(fleet?.tenants.map((t) => t.node.path)).toEqual([
      'stack/PerUser/Tenants/alice',
      'stack/PerUser/Tenants/bob',
      'stack/PerUser/Tenants/carol',
    ]);
    expect(fleet?.instances).toBeUndefined();
    expect(Object.keys(resourcesOf(s, 'kubernetes_service_v1'))).toContain('PerUser_Tenants_alice_Service_81E63E07');
  });

  it('matches the snapshot', () => {
    expect(s.json).toMatchSnapshot();
  });
});

describe('a tenant fleet without tenants yet', () => {
  it('synthesizes only the policy, and tenants can be added later', () => {
    const s = synth((scope) => {
      new KubernetesSessionFleet(scope, 'Later', {
        policy: { isolation: 'tenant', affinity: { type: 'mcp-streamable-http' }, maxInstances: 1 },
        app: { image: 'your-registry/mcp-server:1.0.0', port: 3000 },
      });
    });
    expect(resourceCounts(s)).toEqual({ kubernetes_config_map_v1: 1 });
    const policy = JSON.parse(named(s, 'kubernetes_config_map_v1', 'later-policy').data['policy.json']) as Json;
    expect(policy.isolation).toBe('tenant');
  });
});

describe('tenant isolation behind an authenticating proxy that names the tenant', () => {
  const s = synth((scope) => {
    new KubernetesSessionFleet(scope, 'Proxied', {
      policy: { isolation: 'tenant', affinity: { type: 'cookie' }, maxInstances: 1 },
      app: { image: 'your-registry/web-app:1.0.0', port: 3000 },
      principalHeader: 'x-authenticated-user',
      tenantHeader: 'X-Tenant-Id',
      trustedProxies: KubernetesTrustedProxies.anySource(),
      tenants: [{ tenantId: 'acme' }, { tenantId: 'globex' }],
    });
  });

  it("gives every tenant's agents the tenant header beside the tenant they serve", () => {
    for (const tenant of ['acme', 'globex']) {
      const agent = container(named(s, 'kubernetes_deployment_v1', `proxied-${tenant}`), 'agent');
      expect(agent.args.slice(8)).toEqual([
        '--principal-header',
        'x-authenticated-user',
        '--tenant-header',
        'X-Tenant-Id',
        // Each tenant's state is shared by its instances: the agents clean it up.
        '--session-state-dir',
        '/root/.copilot/session-state',
      ]);
      expect(envOf(agent).SESSIONFLEET_TENANT).toBe(tenant);
    }
  });
});
