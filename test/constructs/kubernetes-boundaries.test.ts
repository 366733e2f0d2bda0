/**
 * What a Kubernetes fleet's props promise at its boundaries (issue 16): who may name the principal,
 * which fleet the agents coordinate as, what the pods may do, and what the recycler may delete.
 */
import { Testing } from 'cdktf';
import type { Construct } from 'constructs';
import { describe, expect, it } from 'vitest';
import {
  AzureContainerInstancesSessionFleet,
  KubernetesFleetRedis,
  KubernetesSessionFleet,
  type KubernetesSessionFleetProps,
  KubernetesSessionStorage,
  KubernetesTrustedProxies,
} from '../../constructs/index.js';
import {
  constructionError,
  container,
  type Json,
  named,
  podSpec,
  resourcesOf,
  synth,
} from './kubernetes-test-helpers.js';

const SHARED_REDIS = KubernetesFleetRedis.external({ secretName: 'shared-redis', key: 'url' });
const WEB: KubernetesSessionFleetProps = {
  policy: { affinity: { type: 'mcp-streamable-http' }, maxInstances: 4 },
  app: { image: 'your-registry/mcp-server:1.0.0', port: 3000 },
  storage: KubernetesSessionStorage.ephemeral(),
  redis: SHARED_REDIS,
};

function flag(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i === -1 ? undefined : args[i + 1];
}

describe('fleet names (--fleet)', () => {
  const s = synth((scope: Construct) => {
    new KubernetesSessionFleet(scope, 'Alpha', WEB);
    new KubernetesSessionFleet(scope, 'Beta', WEB);
    new KubernetesSessionFleet(scope, 'Gamma', { ...WEB, fleetName: 'gamma-prod' });
  });
  const fleetOf = (name: string) =>
    flag(container(named(s, 'kubernetes_deployment_v1', name), 'agent').args, '--fleet');

  it('keeps two fleets on one Redis apart: each passes its own name, derived from its construct path', () => {
    expect(fleetOf('alpha')).toMatch(/^alpha-[0-9a-f]{8}$/);
    expect(fleetOf('beta')).toMatch(/^beta-[0-9a-f]{8}$/);
    expect(fleetOf('alpha')).not.toBe(fleetOf('beta'));
  });

  it('is deterministic and overridable', () => {
    const again = synth((scope: Construct) => new KubernetesSessionFleet(scope, 'Alpha', WEB));
    expect(flag(container(named(again, 'kubernetes_deployment_v1', 'alpha'), 'agent').args, '--fleet')).toBe(
      fleetOf('alpha'),
    );
    expect(fleetOf('gamma')).toBe('gamma-prod');
  });

  it('refuses a name the agent would refuse', () => {
    expect(
      constructionError((stack) => new KubernetesSessionFleet(stack, 'Fleet', { ...WEB, fleetName: 'no spaces' })),
    ).toBe(
      `stack/Fleet: 'fleetName' ("no spaces") must be 1-64 letters, digits, '.', '_' or '-' (the agent's --fleet)`,
    );
  });

  it('passes one on Azure too, derived the same way', () => {
    const json = JSON.parse(
      Testing.synthScope((scope) => {
        new AzureContainerInstancesSessionFleet(scope, 'Fleet', {
          policy: { affinity: { type: 'header', headerName: 'x-session' }, maxInstances: 2 },
          app: { image: 'example.azurecr.io/web-app:1.0.0', port: 3000 },
          location: 'westeurope',
        });
      }),
    );
    for (const group of Object.values(json.resource.azurerm_container_group) as Json[]) {
      const agent = group.container.find((c: Json) => c.name === 'sessionfleet-agent');
      expect(flag(agent.commands, '--fleet')).toMatch(/^fleet-[0-9a-f]{8}$/);
    }
  });
});

describe('who may name the principal', () => {
  it('requires an explicit choice when a principal header is used', () => {
    expect(
      constructionError(
        (stack) => new KubernetesSessionFleet(stack, 'Fleet', { ...WEB, principalHeader: 'x-authenticated-user' }),
      ),
    ).toBe(
      `stack/Fleet: 'principalHeader' ("x-authenticated-user") names the caller, so whoever reaches the client port can be anyone: set 'trustedProxies' to the authenticating proxy (KubernetesTrustedProxies.from({ namespaces, podSelector, cidrs })) or, knowingly, KubernetesTrustedProxies.anySource()`,
    );
  });

  it('opens the client port to the proxy and the fleet itself only, and tells the agent the proxy addresses', () => {
    const s = synth((scope: Construct) => {
      new KubernetesSessionFleet(scope, 'Web', {
        ...WEB,
        principalHeader: 'x-authenticated-user',
        trustedProxies: KubernetesTrustedProxies.from({
          namespaces: ['auth'],
          podSelector: { 'app.kubernetes.io/name': 'oauth2-proxy' },
          cidrs: ['10.20.0.0/16'],
        }),
      });
    });
    const policy = named(s, 'kubernetes_network_policy_v1', 'web');
    expect(policy.spec.ingress[0]).toEqual({
      from: [
        { pod_selector: { match_labels: policy.spec.pod_selector.match_labels } },
        {
          namespace_selector: {
            match_expressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['auth'] }],
          },
          pod_selector: { match_labels: { 'app.kubernetes.io/name': 'oauth2-proxy' } },
        },
        { ip_block: { cidr: '10.20.0.0/16' } },
      ],
      ports: [{ port: '8080', protocol: 'TCP' }],
    });
    expect(flag(container(named(s, 'kubernetes_deployment_v1', 'web'), 'agent').args, '--trusted-proxies')).toBe(
      '10.20.0.0/16',
    );
  });

  it('refuses sources that name nothing or are no CIDR', () => {
    expect(
      constructionError(
        (stack) =>
          new KubernetesSessionFleet(stack, 'Fleet', {
            ...WEB,
            principalHeader: 'x-user',
            trustedProxies: KubernetesTrustedProxies.from({ cidrs: ['10.0.0.0/33'] }),
          }),
      ),
    ).toBe(`stack/Fleet: 'trustedProxies.cidrs[0]' ("10.0.0.0/33") must be an IPv4 or IPv6 CIDR such as "10.0.0.0/8"`);
    expect(
      constructionError(
        (stack) =>
          new KubernetesSessionFleet(stack, 'Fleet', {
            ...WEB,
            principalHeader: 'x-user',
            trustedProxies: KubernetesTrustedProxies.from({}),
          }),
      ),
    ).toBe(`stack/Fleet: 'trustedProxies' (from({})) names no source: give namespaces, a podSelector or cidrs`);
  });
});

describe('Pod Security Standards "restricted"', () => {
  it('is the default for the app, with a typed way out', () => {
    const s = synth((scope: Construct) => {
      new KubernetesSessionFleet(scope, 'Web', WEB);
      new KubernetesSessionFleet(scope, 'Legacy', {
        ...WEB,
        app: {
          ...WEB.app,
          securityContext: { runAsNonRoot: false, readOnlyRootFilesystem: true, addCapabilities: ['NET_ADMIN'] },
        },
      });
    });
    const app = container(named(s, 'kubernetes_deployment_v1', 'web'), 'app');
    expect(app.security_context).toMatchObject({
      run_as_non_root: true,
      allow_privilege_escalation: false,
      capabilities: { drop: ['ALL'] },
      seccomp_profile: { type: 'RuntimeDefault' },
    });
    const legacy = container(named(s, 'kubernetes_deployment_v1', 'legacy'), 'app');
    expect(legacy.security_context).toMatchObject({
      run_as_non_root: false,
      read_only_root_filesystem: true,
      capabilities: { add: ['NET_ADMIN'], drop: ['ALL'] },
    });
  });

  it('refuses root with runAsNonRoot', () => {
    expect(
      constructionError(
        (stack) =>
          new KubernetesSessionFleet(stack, 'Fleet', {
            ...WEB,
            app: { ...WEB.app, securityContext: { runAsUser: 0 } },
          }),
      ),
    ).toBe(
      `stack/Fleet: 'app.securityContext.runAsUser' (0) is root, which 'runAsNonRoot' (true by default) refuses: set 'runAsNonRoot' false to run as root`,
    );
  });
});

describe('draining without a sleep binary in the app image', () => {
  it('leaves the app without a preStop hook when waitForDrain is false', () => {
    const s = synth((scope: Construct) => {
      new KubernetesSessionFleet(scope, 'Web', { ...WEB, app: { ...WEB.app, waitForDrain: false } });
    });
    const deployment = named(s, 'kubernetes_deployment_v1', 'web');
    expect(container(deployment, 'app').lifecycle).toBeUndefined();
    expect(container(deployment, 'agent').lifecycle.pre_stop).toEqual([{ exec: { command: ['sleep', '5'] } }]);
  });
});

describe('the recycler', () => {
  const RECYCLING: KubernetesSessionFleetProps = {
    policy: { isolation: 'session', affinity: { type: 'mcp-streamable-http' } },
    app: { image: 'your-registry/mcp-server:1.0.0', port: 3000 },
    recycleAfterSession: true,
    namespace: 'sandboxes',
  };

  it("may delete its own fleet's pods only: a ValidatingAdmissionPolicy narrows the namespace-wide Role", () => {
    const s = synth((scope: Construct) => new KubernetesSessionFleet(scope, 'Box', RECYCLING));
    const manifests = Object.values(resourcesOf(s, 'kubernetes_manifest')).map((m: Json) => m.manifest);
    const policy = manifests.find((m: Json) => m.kind === 'ValidatingAdmissionPolicy');
    const binding = manifests.find((m: Json) => m.kind === 'ValidatingAdmissionPolicyBinding');
    expect(policy.metadata.name).toBe('sessionfleet-sandboxes-box-recycler');
    expect(policy.spec.matchConditions).toEqual([
      { name: 'recycler', expression: `request.userInfo.username == "system:serviceaccount:sandboxes:box-recycler"` },
    ]);
    expect(policy.spec.validations[0].expression).toContain(
      `oldObject.metadata.labels["app.kubernetes.io/instance"] == "box"`,
    );
    expect(binding.spec).toEqual({
      policyName: 'sessionfleet-sandboxes-box-recycler',
      validationActions: ['Deny'],
      matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'sandboxes' } } },
    });
    expect(podSpec(named(s, 'kubernetes_deployment_v1', 'box')).service_account_name).toMatch(
      /^\$\{kubernetes_service_account_v1\./,
    );
  });

  it('can go without the admission policy, knowingly', () => {
    const s = synth(
      (scope: Construct) => new KubernetesSessionFleet(scope, 'Box', { ...RECYCLING, recyclerAdmissionPolicy: false }),
    );
    expect(resourcesOf(s, 'kubernetes_manifest')).toEqual({});
  });
});
