// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Terraform references such as ${var.x} are plain strings here
/**
 * What each construct tells its agents — the command line and the environment of the synthesized
 * agent container, and the policy file it mounts — is handed to the agent's own parser
 * (`parseAgentConfig`) and start-up check (`checkConfigAgainstPolicy`), so a flag the constructs
 * emit is a flag the agent takes, with the meaning the construct meant. Values the platform fills
 * in at run time (Secret keys, the pod's IP, Terraform references) get stand-ins of the right shape.
 */
import { Testing } from 'cdktf';
import type { Construct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { checkConfigAgainstPolicy, parseAgentConfig } from '../../agent/config.js';
import type { AgentConfig } from '../../agent/core/config.js';
import {
  AzureContainerAppsSessionFleet,
  AzureContainerInstancesSessionFleet,
  AzureTrustedProxies,
  KubernetesSessionFleet,
  KubernetesTrustedProxies,
  type Policy,
  validatePolicyText,
} from '../../constructs/index.js';
import { container, type Json, named, synth } from './kubernetes-test-helpers.js';

/** Stand-ins for what only the platform knows: a Secret's value, a field of the pod. */
const REDIS_URL = 'redis://:stand-in-password@redis.invalid:6379';
const SECRET = 'stand-in-secret-value';
const POD_FIELDS: Record<string, string> = { 'metadata.name': 'fleet-7d9f8-abcde', 'status.podIP': '10.1.2.3' };

function secretStandIn(name: string): string {
  return name === 'SESSIONFLEET_REDIS' ? REDIS_URL : SECRET;
}

/** A policy file as the agent reads it: validated by the shared model, or the test fails. */
function policyOf(text: string): Policy {
  const result = validatePolicyText(text);
  if (!result.ok) throw new Error(`the synthesized policy file is invalid: ${JSON.stringify(result.errors)}`);
  return result.policy;
}

/** The agent's start: its flags parsed, then checked against its policy. Both must accept. */
function startAgent(argv: string[], env: NodeJS.ProcessEnv, policyFile: string): AgentConfig {
  const config = parseAgentConfig(argv, env, { hostname: 'instance-0' });
  expect(checkConfigAgainstPolicy(config, policyOf(policyFile))).toEqual([]);
  return config;
}

/** A container's environment as Kubernetes builds it: value_from filled in, `$(NAME)` expanded in order. */
function kubernetesEnv(agent: Json): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const entry of agent.env as Json[]) {
    const from = entry.value_from;
    const value: string = from?.field_ref
      ? POD_FIELDS[from.field_ref.field_path]
      : from?.secret_key_ref
        ? secretStandIn(entry.name)
        : entry.value;
    expect(value, `env ${entry.name}`).toBeDefined();
    env[entry.name] = value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (ref, name: string) => env[name] ?? ref);
  }
  return env;
}

function kubernetesAgent(s: ReturnType<typeof synth>, deployment: string, policyConfigMap: string): AgentConfig {
  const agent = container(named(s, 'kubernetes_deployment_v1', deployment), 'agent');
  const policyFile = named(s, 'kubernetes_config_map_v1', policyConfigMap).data['policy.json'];
  return startAgent(agent.args, kubernetesEnv(agent), policyFile);
}

const HTTP_APP = { image: 'your-registry/web-app:1.0.0', port: 3000, healthPath: '/health' };

describe('the agent accepts what KubernetesSessionFleet gives it', () => {
  it('an HTTP fleet whose principals and tenants are named by an authenticating proxy', () => {
    const s = synth((scope: Construct) => {
      new KubernetesSessionFleet(scope, 'Web', {
        policy: { affinity: { type: 'mcp-streamable-http' }, maxInstances: 4, sessionsPerTenant: 40 },
        app: HTTP_APP,
        principalHeader: 'X-Authenticated-User',
        tenantHeader: 'X-Authenticated-Tenant',
        trustedProxies: KubernetesTrustedProxies.from({ cidrs: ['10.0.0.0/8', 'fd00::/8'] }),
      });
    });
    const config = kubernetesAgent(s, 'web', 'web-policy');
    expect(config.principalHeader).toBe('x-authenticated-user');
    expect(config.tenantHeader).toBe('x-authenticated-tenant');
    expect(config.tenant).toBeUndefined();
    expect(config.upstream.href).toBe('http://127.0.0.1:3000/');
    expect(config.redis).toEqual({
      kind: 'single',
      tls: false,
      password: SECRET,
      url: expect.stringMatching(
        new RegExp(
          `^redis://:${SECRET}@\\$\\{kubernetes_service_v1\\.Web_Instances_Redis_Service_[0-9A-F]+\\.metadata\\[0\\]\\.name\\}:6379$`,
        ),
      ),
    });
    expect(config.advertise.href).toBe('http://10.1.2.3:8080/');
    expect(config.instanceId).toBe(POD_FIELDS['metadata.name']);
    expect(config.trustedProxies).toEqual(['10.0.0.0/8', 'fd00::/8']);
    expect(config.fleet).toMatch(/^web-[0-9a-f]{8}$/);
  });

  it('an HTTP fleet in JWT mode: the issuer, audience and claims, and no --trusted-proxies for the agent', () => {
    const jwt = {
      issuer: 'https://idp.example.com/realms/main',
      audience: 'https://mcp.example.com/mcp',
      tenantClaim: 'org',
    };
    const s = synth((scope: Construct) => {
      new KubernetesSessionFleet(scope, 'Web', {
        policy: { affinity: { type: 'mcp-streamable-http' }, maxInstances: 4, forwardBearerToken: false },
        app: HTTP_APP,
        jwt,
        // Still a NetworkPolicy for the client port; the agent itself trusts the token, not addresses.
        trustedProxies: KubernetesTrustedProxies.from({ cidrs: ['10.0.0.0/8'] }),
      });
    });
    const config = kubernetesAgent(s, 'web', 'web-policy');
    expect(config.jwt).toEqual({ ...jwt, principalClaim: 'sub' });
    expect(config.principalHeader).toBeUndefined();
    expect(config.trustedProxies).toBeUndefined();
  });

  it("each tenant's agents under tenant isolation: the tenant they serve and the proxy's header", () => {
    const s = synth((scope: Construct) => {
      new KubernetesSessionFleet(scope, 'Web', {
        policy: { isolation: 'tenant', affinity: { type: 'cookie' }, maxInstances: 1 },
        app: HTTP_APP,
        tenantHeader: 'x-tenant',
        trustedProxies: KubernetesTrustedProxies.anySource(),
        tenants: [{ tenantId: 'acme' }, { tenantId: 'globex' }],
      });
    });
    for (const tenant of ['acme', 'globex']) {
      const config = kubernetesAgent(s, `web-${tenant}`, 'web-policy');
      expect(config.tenant).toBe(tenant);
      expect(config.tenantHeader).toBe('x-tenant');
      // One instance per tenant: no Redis, so no fleet to name.
      expect(config.fleet).toBeUndefined();
    }
  });
});

describe('the agent accepts what the Azure fleets give it', () => {
  const AZURE = {
    policy: { affinity: { type: 'header', headerName: 'x-session' }, maxInstances: 2, sessionsPerTenant: 10 },
    app: { image: 'example.azurecr.io/web-app:1.0.0', port: 3000, healthPath: '/health' },
    location: 'westeurope',
    principalHeader: 'x-user',
    trustedProxies: AzureTrustedProxies.from({ cidrs: ['203.0.113.0/24'] }),
    tenantHeader: 'x-tenant',
  } as const;

  it('AzureContainerInstancesSessionFleet: every container group', () => {
    const json = JSON.parse(
      Testing.synthScope((scope) => {
        new AzureContainerInstancesSessionFleet(scope, 'Fleet', {
          ...AZURE,
          trustedProxies: AzureTrustedProxies.anySource('only the proxy subnet reaches the VNet'),
          instanceCount: 2,
          subnetIds: ['${var.subnet_id}'],
        });
      }),
    );
    const groups = Object.values(json.resource.azurerm_container_group) as Json[];
    expect(groups).toHaveLength(2);
    for (const group of groups) {
      const agent = group.container.find((c: Json) => c.name === 'sessionfleet-agent');
      const [executable, ...argv] = agent.commands as string[];
      expect(executable).toBe('sessionfleet-agent');
      const env: NodeJS.ProcessEnv = { ...agent.environment_variables };
      for (const name of Object.keys(agent.secure_environment_variables)) env[name] = secretStandIn(name);
      const policyFile = Buffer.from(agent.volume[0].secret['policy.json'], 'base64').toString('utf8');
      const config = startAgent(argv, env, policyFile);
      expect(config.tenantHeader).toBe('x-tenant');
      expect(config.principalHeader).toBe('x-user');
      expect(config.instanceId).toBe(group.name);
    }
  });

  it('AzureContainerAppsSessionFleet: every replica', () => {
    const json = JSON.parse(
      Testing.synthScope((scope) => {
        new AzureContainerAppsSessionFleet(scope, 'Fleet', AZURE);
      }),
    );
    const app = Object.values(json.resource.azurerm_container_app)[0] as Json;
    const agent = app.template.container.find((c: Json) => c.name === 'sessionfleet-agent');
    const [executable, ...argv] = agent.command as string[];
    expect(executable).toBe('sessionfleet-agent');
    const env: NodeJS.ProcessEnv = {};
    for (const entry of agent.env as Json[])
      env[entry.name] = entry.secret_name ? secretStandIn(entry.name) : entry.value;
    const policyFile = app.secret.find((s: Json) => s.name === 'policy').value;
    const config = startAgent(argv, env, policyFile);
    expect(config.tenantHeader).toBe('x-tenant');
    expect(config.principalHeader).toBe('x-user');
  });

  it('both Azure fleets in JWT mode', () => {
    const { principalHeader: _p, tenantHeader: _t, trustedProxies: _x, ...rest } = AZURE;
    const jwt = { issuer: 'https://login.example.com/tenant/v2.0', audience: 'https://mcp.example.com/' };
    const json = JSON.parse(
      Testing.synthScope((scope) => {
        new AzureContainerAppsSessionFleet(scope, 'Apps', { ...rest, jwt });
        new AzureContainerInstancesSessionFleet(scope, 'Groups', { ...rest, jwt, instanceCount: 1 });
      }),
    );
    const app = Object.values(json.resource.azurerm_container_app)[0] as Json;
    const appAgent = app.template.container.find((c: Json) => c.name === 'sessionfleet-agent');
    const group = Object.values(json.resource.azurerm_container_group)[0] as Json;
    const groupAgent = group.container.find((c: Json) => c.name === 'sessionfleet-agent');
    for (const argv of [appAgent.command, groupAgent.commands] as string[][]) {
      const config = parseAgentConfig(argv.slice(1), {}, { hostname: 'instance-0' });
      expect(config.jwt).toEqual({ ...jwt, principalClaim: 'sub' });
    }
  });
});
