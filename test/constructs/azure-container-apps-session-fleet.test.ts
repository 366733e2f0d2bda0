// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Terraform references such as ${var.x} are plain strings here
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { DataAzurermKeyVaultSecret } from '@cdktf/provider-azurerm/lib/data-azurerm-key-vault-secret/index.js';
import { TerraformVariable, Testing } from 'cdktf';
import type { Construct } from 'constructs';
import { describe, expect, it } from 'vitest';
import {
  AzureContainerAppsSessionFleet,
  type AzureContainerAppsSessionFleetProps,
} from '../../constructs/azure-container-apps-session-fleet.js';
import type { AzureAppContainer } from '../../constructs/azure-fleet-props.js';
import { appWrapperScript } from '../../constructs/azure-shared-fate.js';
import { AzureTrustedProxies, DEFAULT_AGENT_IMAGE, parsePolicy } from '../../constructs/index.js';

interface Probe {
  transport: string;
  port: number;
  path: string;
  initial_delay?: number;
  interval_seconds: number;
  failure_count_threshold: number;
  success_count_threshold?: number;
  timeout: number;
}
interface Container {
  name: string;
  image: string;
  cpu: number;
  memory: string;
  command?: string[];
  env?: { name: string; value?: string; secret_name?: string }[];
  volume_mounts?: { name: string; path: string }[];
  liveness_probe?: Probe[];
  readiness_probe?: Probe[];
}
interface App {
  name: string;
  resource_group_name: string;
  container_app_environment_id: string;
  revision_mode: string;
  secret: { name: string; value?: string; key_vault_secret_id?: string; identity?: string }[];
  registry?: { server: string; username?: string; password_secret_name?: string; identity?: string }[];
  ingress: {
    external_enabled: boolean;
    target_port: number;
    exposed_port?: number;
    transport: string;
    allow_insecure_connections: boolean;
    traffic_weight: { latest_revision: boolean; percentage: number }[];
  };
  template: {
    min_replicas: number;
    max_replicas: number;
    termination_grace_period_seconds: number;
    http_scale_rule?: { name: string; concurrent_requests: string }[];
    tcp_scale_rule?: { name: string; concurrent_requests: string }[];
    custom_scale_rule?: {
      name: string;
      custom_rule_type: string;
      metadata: Record<string, string>;
      authentication: { secret_name: string; trigger_parameter: string }[];
    }[];
    volume: { name: string; storage_type: string; storage_name?: string }[];
    container: Container[];
  };
  tags?: Record<string, string>;
}
type Block = Record<string, Record<string, Record<string, unknown>>>;
interface Stack {
  resource: Block;
  data?: Block;
  output?: Record<string, { value: string; description: string }>;
  variable?: Record<string, Record<string, unknown>>;
}

const IMAGE = 'example.azurecr.io/mcp-server:1.4.0';
const BASE: AzureContainerAppsSessionFleetProps = {
  policy: { affinity: { type: 'mcp-streamable-http' }, maxInstances: 20 },
  app: { image: IMAGE, port: 3000 },
  location: 'westeurope',
};
const APP_ID = '${azurerm_container_app.Fleet_App_F0A8CC51';
const RG_NAME = '${azurerm_resource_group.Fleet_ResourceGroup_F7F4825D.name}';

/** Props on top of BASE; `app` is merged with BASE's, so a test names only what it changes. */
type Extra = Omit<Partial<AzureContainerAppsSessionFleetProps>, 'app'> & { app?: Partial<AzureAppContainer> };

function synth(extra: (scope: Construct) => Extra = () => ({})) {
  let fleet: AzureContainerAppsSessionFleet | undefined;
  const json = Testing.synthScope((scope) => {
    const props = extra(scope);
    fleet = new AzureContainerAppsSessionFleet(scope, 'Fleet', {
      ...BASE,
      ...props,
      app: { ...BASE.app, ...props.app },
    });
  });
  return { json, stack: JSON.parse(json) as Stack, fleet: fleet! };
}

function one<T>(stack: Stack, type: string): T {
  const items = Object.values(stack.resource[type] ?? {});
  expect(items, type).toHaveLength(1);
  return items[0] as T;
}

function all<T>(stack: Stack, type: string): T[] {
  return Object.values(stack.resource[type] ?? {}) as T[];
}

function app(stack: Stack): App {
  return one<App>(stack, 'azurerm_container_app');
}

function containers(stack: Stack): { app: Container; agent: Container } {
  const list = app(stack).template.container;
  expect(list.map((c) => c.name)).toEqual(['app', 'sessionfleet-agent']);
  return { app: list[0]!, agent: list[1]! };
}

function errorOf(extra: (scope: Construct) => Extra): string {
  try {
    synth(extra);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected the fleet to be rejected');
}

function sensitive(scope: Construct, name: string): TerraformVariable {
  return new TerraformVariable(scope, name, { type: 'string', sensitive: true });
}

function keyVaultSecret(scope: Construct, id: string, name: string): DataAzurermKeyVaultSecret {
  return new DataAzurermKeyVaultSecret(scope, id, {
    name,
    keyVaultId: '/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv',
  });
}

const SESSION_POLICY = { isolation: 'session', affinity: { type: 'mcp-streamable-http' }, maxInstances: 20 } as const;

describe('AzureContainerAppsSessionFleet: what it synthesizes', () => {
  it('creates a resource group, storage, Redis, a workspace, an environment with the share and one container app', () => {
    const { stack, fleet } = synth();
    expect(Object.keys(stack.resource).sort()).toEqual([
      'azurerm_container_app',
      'azurerm_container_app_environment',
      'azurerm_container_app_environment_storage',
      'azurerm_log_analytics_workspace',
      'azurerm_managed_redis',
      'azurerm_resource_group',
      'azurerm_storage_account',
      'azurerm_storage_share',
    ]);
    expect(stack.data).toBeUndefined();
    expect(fleet.name).toMatch(/^sessionfleet-[0-9a-f]{8}$/);
    expect(one(stack, 'azurerm_resource_group')).toEqual({ name: `${fleet.name}-rg`, location: 'westeurope' });
    expect(one(stack, 'azurerm_storage_share')).toMatchObject({ name: 'session-state', quota: 100 });
    expect(one(stack, 'azurerm_managed_redis')).toMatchObject({
      sku_name: 'Balanced_B1',
      default_database: { client_protocol: 'Encrypted', access_keys_authentication_enabled: true },
    });
  });

  it('creates the environment with a Log Analytics workspace', () => {
    const { stack, fleet } = synth();
    expect(one(stack, 'azurerm_log_analytics_workspace')).toEqual({
      name: `${fleet.name}-logs`,
      resource_group_name: RG_NAME,
      location: 'westeurope',
      sku: 'PerGB2018',
      retention_in_days: 30,
    });
    expect(one(stack, 'azurerm_container_app_environment')).toEqual({
      name: `${fleet.name}-env`,
      resource_group_name: RG_NAME,
      location: 'westeurope',
      logs_destination: 'log-analytics',
      log_analytics_workspace_id: '${azurerm_log_analytics_workspace.Fleet_Logs_9272F8FA.id}',
    });
  });

  it('registers the session-state share with the environment, read-write', () => {
    const { stack, fleet } = synth();
    expect(one(stack, 'azurerm_container_app_environment_storage')).toEqual({
      name: fleet.name,
      container_app_environment_id: '${azurerm_container_app_environment.Fleet_Environment_1B19A245.id}',
      account_name: '${azurerm_storage_account.Fleet_SessionState_Account_8C46F708.name}',
      access_key: '${azurerm_storage_account.Fleet_SessionState_Account_8C46F708.primary_access_key}',
      share_name: '${azurerm_storage_share.Fleet_SessionState_Share_65433F5B.name}',
      access_mode: 'ReadWrite',
    });
  });

  it("sends external HTTP ingress to the agent's client port and scales between the policy's bounds", () => {
    const { stack, fleet } = synth();
    const ca = app(stack);
    expect(ca).toMatchObject({
      name: fleet.name,
      resource_group_name: RG_NAME,
      container_app_environment_id: '${azurerm_container_app_environment.Fleet_Environment_1B19A245.id}',
      revision_mode: 'Single',
    });
    expect(ca.ingress).toEqual({
      external_enabled: true,
      target_port: 8080,
      transport: 'auto',
      allow_insecure_connections: false,
      traffic_weight: [{ latest_revision: true, percentage: 100 }],
    });
    expect(ca.template).toMatchObject({
      min_replicas: 1,
      max_replicas: 20,
      termination_grace_period_seconds: 45,
      // KEDA's Redis scaler on the list the agents keep at one entry per session (scale-gauge e2e test).
      custom_scale_rule: [
        {
          name: 'sessions',
          custom_rule_type: 'redis',
          metadata: {
            address:
              '${azurerm_managed_redis.Fleet_Redis_ManagedRedis_3D7ABAB9.hostname}:${azurerm_managed_redis.Fleet_Redis_ManagedRedis_3D7ABAB9.default_database[0].port}',
            listName: `sessionfleet:{${fleet.fleetName}}:scale:demand`,
            listLength: '20',
            enableTLS: 'true',
          },
          authentication: [{ secret_name: 'scale-redis-key', trigger_parameter: 'password' }],
        },
      ],
      volume: [
        {
          name: 'session-state',
          storage_type: 'AzureFile',
          storage_name: '${azurerm_container_app_environment_storage.Fleet_SessionStateStorage_9594EA6A.name}',
        },
        { name: 'sessionfleet-secrets', storage_type: 'Secret' },
      ],
    });
    expect(ca.template.tcp_scale_rule).toBeUndefined();
    expect(ca.template.http_scale_rule).toBeUndefined();
    expect(fleet.scaleOn).toBe('sessions');
    expect([fleet.minReplicas, fleet.maxReplicas]).toEqual([1, 20]);
    expect(stack.output).toEqual({
      Fleet_Address_45AD850D: {
        value: `https://${APP_ID}.ingress[0].fqdn}`,
        description: `Where clients reach the fleet ${fleet.name}.`,
      },
    });
  });

  it('keeps the policy and the Redis URL as container app secrets', () => {
    const { stack, fleet } = synth();
    expect(app(stack).secret).toEqual([
      { name: 'policy', value: fleet.policyFile },
      {
        name: 'redis-url',
        value:
          'rediss://:${urlencode(azurerm_managed_redis.Fleet_Redis_ManagedRedis_3D7ABAB9.default_database[0].primary_access_key)}@${azurerm_managed_redis.Fleet_Redis_ManagedRedis_3D7ABAB9.hostname}:${azurerm_managed_redis.Fleet_Redis_ManagedRedis_3D7ABAB9.default_database[0].port}',
      },
      {
        name: 'scale-redis-key',
        value: '${azurerm_managed_redis.Fleet_Redis_ManagedRedis_3D7ABAB9.default_database[0].primary_access_key}',
      },
    ]);
    const policy = JSON.parse(fleet.policyFile);
    expect(parsePolicy(policy)).toEqual(fleet.policy);
    expect(policy).toMatchObject({ minInstances: 1, maxInstances: 20, instanceVcpu: 1, sharedSessionState: true });
  });

  it('lets Terraform fill in a policy value known only at apply time', () => {
    const { stack } = synth((scope) => ({
      policy: {
        ...BASE.policy,
        sessionIdleTimeoutSeconds: new TerraformVariable(scope, 'idle_seconds', { type: 'number' }).numberValue,
      },
    }));
    expect(app(stack).secret[0]!.value).toContain('"sessionIdleTimeoutSeconds": ${var.idle_seconds},\n');
  });

  it('runs the app with the share mounted and a liveness probe on the agent', () => {
    const { stack, fleet } = synth(() => ({ app: { command: ['node', 'server.js'], env: { PORT: '3000' } } }));
    expect(containers(stack).app).toEqual({
      name: 'app',
      image: IMAGE,
      cpu: 1,
      memory: '2Gi',
      // The drain wrapper runs the command (docs/adr/0101): SIGTERM reaches it after the agent drained.
      command: ['/bin/sh', '-c', appWrapperScript(fleet.policy), 'node', 'server.js'],
      env: [{ name: 'PORT', value: '3000' }],
      volume_mounts: [
        { name: 'session-state', path: '/root/.copilot/session-state' },
        { name: 'sessionfleet-run', path: '/run/sessionfleet' },
      ],
      liveness_probe: [
        {
          transport: 'HTTP',
          port: 9090,
          path: '/healthz',
          initial_delay: 30,
          interval_seconds: 10,
          failure_count_threshold: 3,
          timeout: 5,
        },
      ],
    });
  });

  it('runs the agent with the policy from the secrets volume, its secrets as env and probes on /healthz and /readyz', () => {
    const { stack, fleet } = synth();
    const { agent } = containers(stack);
    expect(agent).toEqual({
      name: 'sessionfleet-agent',
      image: DEFAULT_AGENT_IMAGE,
      cpu: 0.5,
      memory: '1Gi',
      command: [
        'sessionfleet-agent',
        '--policy',
        '/etc/sessionfleet/policy',
        '--upstream',
        'http://127.0.0.1:3000',
        '--listen',
        '0.0.0.0:8080',
        '--admin-listen',
        '0.0.0.0:9090',
        // Issue 16: two fleets on one Redis stay two fleets.
        '--fleet',
        expect.stringMatching(/^fleet-[0-9a-f]{8}$/),
      ],
      env: [
        { name: 'POLICY_SHA256', value: createHash('sha256').update(fleet.policyFile).digest('hex') },
        { name: 'SESSIONFLEET_REDIS', secret_name: 'redis-url' },
      ],
      volume_mounts: [{ name: 'sessionfleet-secrets', path: '/etc/sessionfleet' }],
      liveness_probe: [
        {
          transport: 'HTTP',
          port: 9090,
          path: '/healthz',
          initial_delay: 10,
          interval_seconds: 10,
          failure_count_threshold: 3,
          timeout: 5,
        },
      ],
      readiness_probe: [
        {
          transport: 'HTTP',
          port: 9090,
          path: '/readyz/serving',
          interval_seconds: 5,
          failure_count_threshold: 3,
          success_count_threshold: 1,
          timeout: 5,
        },
      ],
    });
  });

  it('rolls the replicas when the policy changes, since a changed secret alone starts no revision', () => {
    const digest = (stack: Stack) => containers(stack).agent.env![0]!.value;
    const before = synth().stack;
    const after = synth(() => ({ policy: { ...BASE.policy, sessionIdleTimeoutSeconds: 600 } })).stack;
    expect(digest(after)).not.toBe(digest(before));
    expect(digest(synth().stack)).toBe(digest(before));
  });

  it('runs session isolation on 2-vCPU replicas, scaling out per session', () => {
    const { stack, fleet } = synth(() => ({ policy: SESSION_POLICY, app: { cpu: 2 } }));
    expect(containers(stack).app).toMatchObject({ cpu: 2, memory: '4Gi' });
    expect(app(stack).template.custom_scale_rule).toEqual([
      {
        name: 'sessions',
        custom_rule_type: 'redis',
        metadata: {
          address:
            '${azurerm_managed_redis.Fleet_Redis_ManagedRedis_3D7ABAB9.hostname}:${azurerm_managed_redis.Fleet_Redis_ManagedRedis_3D7ABAB9.default_database[0].port}',
          listName: `sessionfleet:{${fleet.fleetName}}:scale:demand`,
          listLength: '1',
          enableTLS: 'true',
        },
        authentication: [{ secret_name: 'scale-redis-key', trigger_parameter: 'password' }],
      },
    ]);
    expect(app(stack).template.http_scale_rule).toBeUndefined();
    expect(fleet.policy).toMatchObject({ isolation: 'session', sessionsPerInstance: 1, instanceVcpu: 2 });
  });

  it("uses TCP ingress and a TCP scale rule for the Copilot CLI's JSON-RPC in a VNet environment", () => {
    const subnet =
      '/subscriptions/0000/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aca';
    const { stack, fleet } = synth(() => ({
      policy: { affinity: { type: 'copilot-jsonrpc' } },
      app: { port: 4321 },
      infrastructureSubnetId: subnet,
    }));
    expect(one(stack, 'azurerm_container_app_environment')).toMatchObject({ infrastructure_subnet_id: subnet });
    const ca = app(stack);
    expect(ca.ingress).toMatchObject({
      transport: 'tcp',
      target_port: 8080,
      exposed_port: 8080,
      external_enabled: true,
    });
    expect(ca.template.custom_scale_rule).toEqual([
      {
        name: 'sessions',
        custom_rule_type: 'redis',
        metadata: {
          address:
            '${azurerm_managed_redis.Fleet_Redis_ManagedRedis_3D7ABAB9.hostname}:${azurerm_managed_redis.Fleet_Redis_ManagedRedis_3D7ABAB9.default_database[0].port}',
          listName: `sessionfleet:{${fleet.fleetName}}:scale:demand`,
          listLength: '20',
          enableTLS: 'true',
        },
        authentication: [{ secret_name: 'scale-redis-key', trigger_parameter: 'password' }],
      },
    ]);
    expect(ca.template.tcp_scale_rule).toBeUndefined();
    expect(ca.template.http_scale_rule).toBeUndefined();
    expect(containers(stack).agent.command).toContain('tcp://127.0.0.1:4321');
    expect(Object.values(stack.output!).map((o) => o.value)).toEqual([`tcp://${APP_ID}.ingress[0].fqdn}:8080`]);
    expect(Object.keys(stack.output!)).toEqual([fleet.addressOutput.friendlyUniqueId]);
  });

  it('scales on open requests with an existing Redis, whose address it cannot take apart from the URL secret', () => {
    const { stack, fleet } = synth((scope) => ({ redisUrl: sensitive(scope, 'redis_url') }));
    const ca = app(stack);
    expect(ca.template.custom_scale_rule).toBeUndefined();
    expect(ca.template.http_scale_rule).toEqual([{ name: 'sessions-per-replica', concurrent_requests: '20' }]);
    expect(ca.secret.map((s) => s.name)).not.toContain('scale-redis-key');
    expect(fleet.scaleOn).toBe('requests');
  });

  it("mounts the share into the agent only in front of the Copilot CLI: the app's state is a replica-local directory the agent stages into (ADR 0019)", () => {
    const { stack } = synth(() => ({ policy: { affinity: { type: 'copilot-jsonrpc' } }, externalIngress: false }));
    const { app: appContainer, agent } = containers(stack);
    // (No drain wrapper without a command of the app's own: no run volume.)
    expect(appContainer.volume_mounts).toEqual([{ name: 'app-session-state', path: '/root/.copilot/session-state' }]);
    expect(agent.volume_mounts).toEqual([
      { name: 'sessionfleet-secrets', path: '/etc/sessionfleet' },
      { name: 'session-state', path: '/var/lib/sessionfleet/shared-state' },
      { name: 'app-session-state', path: '/var/lib/sessionfleet/app-state' },
    ]);
    expect(agent.command).toEqual(
      expect.arrayContaining([
        '--session-state-dir',
        '/var/lib/sessionfleet/shared-state',
        '--app-state-dir',
        '/var/lib/sessionfleet/app-state',
      ]),
    );
    expect(app(stack).template.volume).toContainEqual({ name: 'app-session-state', storage_type: 'EmptyDir' });
  });

  it('allows internal TCP ingress without a VNet', () => {
    const { stack } = synth(() => ({ policy: { affinity: { type: 'copilot-jsonrpc' } }, externalIngress: false }));
    expect(app(stack).ingress).toMatchObject({ transport: 'tcp', external_enabled: false });
  });

  it('runs in an existing environment and registers the share there', () => {
    const envId = '/subscriptions/0000/resourceGroups/apps/providers/Microsoft.App/managedEnvironments/shared';
    const { stack, fleet } = synth(() => ({ containerAppEnvironmentId: envId }));
    expect(stack.resource.azurerm_container_app_environment).toBeUndefined();
    expect(stack.resource.azurerm_log_analytics_workspace).toBeUndefined();
    expect(fleet.environment).toBeUndefined();
    expect(one(stack, 'azurerm_container_app_environment_storage')).toMatchObject({
      container_app_environment_id: envId,
    });
    expect(app(stack).container_app_environment_id).toBe(envId);
  });

  it('creates the environment on an existing workspace', () => {
    const workspace = '/subscriptions/0000/resourceGroups/ops/providers/Microsoft.OperationalInsights/workspaces/ops';
    const { stack } = synth(() => ({ logAnalyticsWorkspaceId: workspace }));
    expect(stack.resource.azurerm_log_analytics_workspace).toBeUndefined();
    expect(one(stack, 'azurerm_container_app_environment')).toMatchObject({ log_analytics_workspace_id: workspace });
  });

  it('hands Key Vault secrets, the principals file and registry credentials over as secrets', () => {
    const { stack } = synth((scope) => ({
      keyVaultReferences: false,
      upstreamToken: keyVaultSecret(scope, 'UpstreamToken', 'upstream-token'),
      adminToken: sensitive(scope, 'admin_token'),
      principals: keyVaultSecret(scope, 'Principals', 'sessionfleet-principals'),
      app: { secretEnv: { OPENAI_API_KEY: keyVaultSecret(scope, 'OpenAiKey', 'openai-api-key') } },
      registryServer: 'example.azurecr.io',
      registryUsername: 'puller',
      registryPassword: sensitive(scope, 'registry_password'),
    }));
    const ca = app(stack);
    expect(ca.secret.slice(1)).toEqual([
      { name: 'redis-url', value: expect.stringMatching(/^rediss:\/\/:\$\{urlencode\(/) },
      { name: 'upstream-token', value: '${data.azurerm_key_vault_secret.UpstreamToken.value}' },
      { name: 'admin-token', value: '${var.admin_token}' },
      { name: 'principals', value: '${data.azurerm_key_vault_secret.Principals.value}' },
      { name: 'registry-password', value: '${var.registry_password}' },
      { name: 'app-openai-api-key', value: '${data.azurerm_key_vault_secret.OpenAiKey.value}' },
      {
        name: 'scale-redis-key',
        value: '${azurerm_managed_redis.Fleet_Redis_ManagedRedis_3D7ABAB9.default_database[0].primary_access_key}',
      },
    ]);
    expect(ca.registry).toEqual([
      { server: 'example.azurecr.io', username: 'puller', password_secret_name: 'registry-password' },
    ]);
    const { app: appContainer, agent } = containers(stack);
    expect(appContainer.env).toEqual([{ name: 'OPENAI_API_KEY', secret_name: 'app-openai-api-key' }]);
    expect(agent.env!.slice(1)).toEqual([
      { name: 'SESSIONFLEET_REDIS', secret_name: 'redis-url' },
      { name: 'SESSIONFLEET_UPSTREAM_TOKEN', secret_name: 'upstream-token' },
      { name: 'SESSIONFLEET_ADMIN_TOKEN', secret_name: 'admin-token' },
    ]);
    expect(agent.command!.slice(-2)).toEqual(['--principals', '/etc/sessionfleet/principals']);
  });

  it('reads Key Vault secrets by reference with its own identity, and pulls from a registry with it', () => {
    const { stack, fleet } = synth((scope) => ({
      upstreamToken: keyVaultSecret(scope, 'UpstreamToken', 'upstream-token'),
      adminToken: sensitive(scope, 'admin_token'),
      principals: keyVaultSecret(scope, 'Principals', 'sessionfleet-principals'),
      app: { secretEnv: { OPENAI_API_KEY: keyVaultSecret(scope, 'OpenAiKey', 'openai-api-key') } },
      registryServer: 'example.azurecr.io',
      containerRegistryId:
        '/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/example',
    }));
    const ca = app(stack) as ReturnType<typeof app> & {
      identity: unknown;
      depends_on: string[];
    };
    const identity = '${azurerm_user_assigned_identity.Fleet_Identity_44AC6AFB.id}';
    expect(ca.identity).toEqual({ type: 'UserAssigned', identity_ids: [identity] });
    expect(ca.secret.slice(1)).toEqual([
      { name: 'redis-url', value: expect.stringMatching(/^rediss:\/\/:\$\{urlencode\(/) },
      {
        name: 'upstream-token',
        key_vault_secret_id: '${data.azurerm_key_vault_secret.UpstreamToken.versionless_id}',
        identity,
      },
      { name: 'admin-token', value: '${var.admin_token}' },
      {
        name: 'principals',
        key_vault_secret_id: '${data.azurerm_key_vault_secret.Principals.versionless_id}',
        identity,
      },
      {
        name: 'app-openai-api-key',
        key_vault_secret_id: '${data.azurerm_key_vault_secret.OpenAiKey.versionless_id}',
        identity,
      },
      {
        name: 'scale-redis-key',
        value: '${azurerm_managed_redis.Fleet_Redis_ManagedRedis_3D7ABAB9.default_database[0].primary_access_key}',
      },
    ]);
    expect(ca.registry).toEqual([{ server: 'example.azurecr.io', identity }]);
    const roles = all<{ scope: string; role_definition_name: string; principal_id: string; principal_type: string }>(
      stack,
      'azurerm_role_assignment',
    );
    expect(roles.map((r) => [r.role_definition_name, r.scope])).toEqual([
      ['AcrPull', '/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/example'],
      ['Key Vault Secrets User', '/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv'],
    ]);
    for (const role of roles) {
      expect(role.principal_id).toBe('${azurerm_user_assigned_identity.Fleet_Identity_44AC6AFB.principal_id}');
      expect(role.principal_type).toBe('ServicePrincipal');
    }
    // The first revision needs the roles: pulling and reading secrets happen at creation.
    expect(ca.depends_on).toHaveLength(2);
    expect(fleet.identity).toBeDefined();
    expect(JSON.stringify(ca.secret)).not.toContain('.value}');
  });

  it('refuses registry credentials together with a registry read by identity', () => {
    expect(
      errorOf((scope) => ({
        containerRegistryId: '/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/x',
        registryUsername: 'puller',
        registryPassword: sensitive(scope, 'registry_password'),
      })),
    ).toBe(
      [
        'stack/Fleet: 2 problems:',
        `  - 'containerRegistryId' needs 'registryServer' (the registry's login server, e.g. myregistry.azurecr.io)`,
        `  - 'registryUsername' and 'registryPassword' cannot be combined with 'containerRegistryId': the image is pulled with the fleet's managed identity`,
      ].join('\n'),
    );
  });

  it('passes the principal and tenant headers to the agent, so a fleet behind a proxy has tenant quotas', () => {
    const { stack, fleet } = synth(() => ({
      policy: { affinity: { type: 'mcp-streamable-http' }, maxInstances: 20, sessionsPerTenant: 10 },
      principalHeader: 'x-user',
      trustedProxies: AzureTrustedProxies.anySource('the tests stand for a proxy-only network'),
      tenantHeader: 'x-tenant',
    }));
    const { agent } = containers(stack);
    expect(agent.command!.slice(-4)).toEqual(['--principal-header', 'x-user', '--tenant-header', 'x-tenant']);
    expect(agent.env!.map((e) => e.name)).not.toContain('SESSIONFLEET_TENANT');
    expect(fleet.policy.sessionsPerTenant).toBe(10);
  });

  it('uses an existing Redis URL and creates no cache', () => {
    const { stack, fleet } = synth((scope) => ({ redisUrl: sensitive(scope, 'redis_url') }));
    expect(stack.resource.azurerm_redis_cache).toBeUndefined();
    expect(fleet.redisCache).toBeUndefined();
    expect(app(stack).secret[1]).toEqual({ name: 'redis-url', value: '${var.redis_url}' });
  });

  it('tags what it creates', () => {
    const { stack } = synth(() => ({ tags: { team: 'platform' } }));
    for (const type of [
      'azurerm_container_app',
      'azurerm_container_app_environment',
      'azurerm_log_analytics_workspace',
      'azurerm_managed_redis',
      'azurerm_resource_group',
      'azurerm_storage_account',
    ]) {
      expect(one<{ tags: unknown }>(stack, type).tags, type).toEqual({ team: 'platform' });
    }
  });
});

describe('AzureContainerAppsSessionFleet: secrets never reach the synthesized JSON', () => {
  it('writes only references as secret values (the policy, not a secret, excepted)', () => {
    const { stack } = synth((scope) => ({
      upstreamToken: sensitive(scope, 'upstream_token'),
      adminToken: keyVaultSecret(scope, 'AdminToken', 'admin-token'),
      principals: sensitive(scope, 'principals'),
      app: { secretEnv: { GITHUB_TOKEN: keyVaultSecret(scope, 'GitHubToken', 'github-token') } },
    }));
    const reference = /^(\$\{[^}]+\}|rediss:\/\/:\$\{urlencode\([^)]+\)\}@\$\{[^}]+\}:\$\{[^}]+\})$/;
    const secrets = app(stack).secret.filter((s) => s.name !== 'policy');
    expect(secrets).toHaveLength(6);
    for (const secret of secrets) {
      // A Key Vault secret goes by reference: its URL, read by the fleet's identity at run time.
      if (secret.key_vault_secret_id !== undefined) expect(secret.key_vault_secret_id).toMatch(reference);
      else expect(secret.value, secret.name).toMatch(reference);
    }
    for (const container of app(stack).template.container) {
      for (const env of container.env ?? []) {
        if (env.value !== undefined) expect(env.name).toMatch(/^(POLICY_SHA256)$/);
      }
    }
    for (const variable of Object.values(stack.variable!))
      expect(variable).toEqual({ type: 'string', sensitive: true });
  });

  it('refuses a plain string secret without repeating it', () => {
    const message = errorOf(() => ({ app: { secretEnv: { GITHUB_TOKEN: 'ghp-plain-3c1e' } } }));
    expect(message).toBe(
      "stack/Fleet: 'app.secretEnv.GITHUB_TOKEN' is a plain string: pass a reference (a Key Vault secret data source, a sensitive TerraformVariable or a resource attribute) so the secret is not written into the synthesized JSON",
    );
    expect(message).not.toContain('ghp-plain-3c1e');
  });
});

describe('AzureContainerAppsSessionFleet: validation', () => {
  it('checks the tenant header as the agent does, and refuses it where it could name no tenant', () => {
    expect(errorOf(() => ({ tenantHeader: 'x tenant' }))).toBe(
      `stack/Fleet: 'tenantHeader' ("x tenant") must be a valid HTTP header name (letters, digits and !#$%&'*+-.^_\`|~)`,
    );
    expect(
      errorOf(() => ({
        principalHeader: 'x-user',
        tenantHeader: 'X-USER',
        trustedProxies: AzureTrustedProxies.anySource('the tests stand for a proxy-only network'),
      })),
    ).toBe(
      `stack/Fleet: 'tenantHeader' ("X-USER") must not be the header naming the principal ('principalHeader' "x-user")`,
    );
    expect(
      errorOf(() => ({
        policy: { affinity: { type: 'copilot-jsonrpc' } },
        externalIngress: false,
        tenantHeader: 'x-tenant',
      })),
    ).toBe(
      `stack/Fleet: 'tenantHeader' ("x-tenant") is read by the HTTP front only, and 'policy.affinity.type' "copilot-jsonrpc" is served by the Copilot front, which has no HTTP headers: name a Copilot client's tenant in its entry of the principals file ('principals') instead`,
    );
  });

  it('refuses recycling it could not make real: without the drain wrapper an exited agent restarts beside the same app', () => {
    expect(
      errorOf(() => ({
        app: { cpu: 2 },
        policy: { isolation: 'session', affinity: { type: 'mcp-streamable-http' }, recycleAfterSession: true },
      })),
    ).toBe(
      `stack/Fleet: 'policy.recycleAfterSession' needs the drain wrapper on Azure (give 'app.command' and leave 'drainWrapper' on): Container Apps and Container Instances restart an exited agent in place, so the app process, with the ended session in memory, would serve the next session`,
    );
    expect(
      errorOf(() => ({
        app: { command: ['node', 'server.js'], cpu: 2 },
        drainWrapper: false,
        policy: { isolation: 'session', affinity: { type: 'mcp-streamable-http' }, recycleAfterSession: true },
      })),
    ).toContain(`'policy.recycleAfterSession' needs the drain wrapper on Azure`);
    expect(errorOf(() => ({ drainWrapper: true }))).toBe(
      `stack/Fleet: 'drainWrapper' needs 'app.command': the wrapper starts the app itself, and the image's own entrypoint is not known at synth time`,
    );
  });

  it('says what a fleet without the drain wrapper gets', () => {
    const { fleet } = synth(() => ({ app: { command: ['node', 'server.js'] }, drainWrapper: false }));
    expect(fleet.node.metadata.filter((m) => m.type === '@cdktf/warn').map((m) => m.data)).toContain(
      `'drainWrapper' is off (no 'app.command', or set to false): the app receives SIGTERM together with the agent, so sessions still in flight when the instance stops may end before the agent has drained them`,
    );
  });

  it('requires a choice of who may send the principal header, and enforces address ranges on the ingress', () => {
    expect(errorOf(() => ({ principalHeader: 'x-user' }))).toBe(
      `stack/Fleet: 'trustedProxies' is required with 'principalHeader' ("x-user"): the agent takes the principal from that header on every request reaching its client port, so any source that reaches it could name any user; give AzureTrustedProxies.from({ cidrs }) with your proxy's addresses, or AzureTrustedProxies.anySource(reason)`,
    );
    expect(errorOf(() => ({ principalHeader: 'x-user', trustedProxies: AzureTrustedProxies.anySource(' ') }))).toBe(
      `stack/Fleet: 'trustedProxies' AzureTrustedProxies.anySource(reason) needs a reason: say why any source may name a principal`,
    );
    expect(
      errorOf(() => ({
        principalHeader: 'x-user',
        trustedProxies: AzureTrustedProxies.from({ cidrs: ['10.0.0.0/33'] }),
      })),
    ).toBe(
      `stack/Fleet: 'trustedProxies' range "10.0.0.0/33" must be an IPv4 address or CIDR range, e.g. "203.0.113.0/24"`,
    );
    expect(errorOf(() => ({ trustedProxies: AzureTrustedProxies.anySource('proxy only') }))).toBe(
      `stack/Fleet: 'trustedProxies' only applies with 'principalHeader': nothing else is taken on trust from a request`,
    );
    const { stack } = synth(() => ({
      principalHeader: 'x-user',
      trustedProxies: AzureTrustedProxies.from({ cidrs: ['203.0.113.0/24', '198.51.100.7'] }),
    }));
    const app = one<{ ingress: { ip_security_restriction?: unknown[] } }>(stack, 'azurerm_container_app');
    expect(app.ingress.ip_security_restriction).toEqual([
      {
        name: 'trusted-proxy-0',
        action: 'Allow',
        ip_address_range: '203.0.113.0/24',
        description: 'may send the principal header',
      },
      {
        name: 'trusted-proxy-1',
        action: 'Allow',
        ip_address_range: '198.51.100.7',
        description: 'may send the principal header',
      },
    ]);
  });

  it('refuses tenant isolation: its agents would not know the tenant they serve', () => {
    expect(errorOf(() => ({ policy: { isolation: 'tenant', affinity: { type: 'copilot-jsonrpc' } } }))).toBe(
      "stack/Fleet: 'policy.isolation' (\"tenant\") is not available on Azure: under tenant isolation every agent must be told the one tenant its instance serves (--tenant), which the Azure fleets do not do; use KubernetesSessionFleet's tenants, or another isolation mode",
    );
  });

  it('checks the 2-vCPU rule of session isolation against the app container', () => {
    expect(errorOf(() => ({ policy: SESSION_POLICY }))).toBe(
      "stack/Fleet: 'policy.instanceVcpu': session isolation requires an instance with at least 2 vCPU (instanceVcpu is 1)",
    );
  });

  it('checks the consumption plan CPU and memory steps', () => {
    expect(errorOf(() => ({ app: { cpu: 1.1 } }))).toBe(
      "stack/Fleet: 'app.cpu' (1.1) must be a multiple of 0.25 on Azure Container Apps",
    );
    expect(errorOf(() => ({ agent: { memoryMiB: 768 } }))).toBe(
      "stack/Fleet: 'agent.memoryMiB' (768) must be a multiple of 512 (0.5 GiB) on Azure Container Apps",
    );
    expect(errorOf(() => ({ app: { memoryMiB: 3072 } }))).toBe(
      "stack/Fleet: 'app.memoryMiB' + 'agent.memoryMiB' (4096) must be 2048 MiB per vCPU of 'app.cpu' + 'agent.cpu' (1.5) on Azure Container Apps: 3072",
    );
    expect(errorOf(() => ({ app: { cpu: 4 } }))).toBe(
      "stack/Fleet: 'app.cpu' + 'agent.cpu' (4.5) must be at most 4 vCPUs per replica on Azure Container Apps",
    );
    const { stack, fleet } = synth(() => ({ app: { cpu: 3.5 } }));
    expect(fleet.app.memoryMiB).toBe(7168);
    expect(containers(stack).app).toMatchObject({ cpu: 3.5, memory: '7Gi' });
  });

  it('keeps the drain time within the grace period Container Apps allows', () => {
    expect(errorOf(() => ({ policy: { ...BASE.policy, drainTimeoutSeconds: 600 } }))).toBe(
      "stack/Fleet: 'policy.drainTimeoutSeconds' (600) needs a termination grace period of 615 s; Azure Container Apps allows at most 600 s, so drainTimeoutSeconds must be at most 585",
    );
    expect(
      app(synth(() => ({ policy: { ...BASE.policy, drainTimeoutSeconds: 585 } })).stack).template
        .termination_grace_period_seconds,
    ).toBe(600);
  });

  it('needs a VNet environment for external TCP ingress', () => {
    expect(errorOf(() => ({ policy: { affinity: { type: 'copilot-jsonrpc' } } }))).toBe(
      `stack/Fleet: 'infrastructureSubnetId' is required for affinity "copilot-jsonrpc" with external ingress: Azure Container Apps offers external TCP ingress only in an environment with its own virtual network (or set 'externalIngress' to false)`,
    );
  });

  it('refuses settings of a new environment together with an existing one', () => {
    expect(
      errorOf(() => ({
        containerAppEnvironmentId: '/subscriptions/0000/env',
        logAnalyticsWorkspaceId: '/subscriptions/0000/ws',
      })),
    ).toBe(
      "stack/Fleet: 'logAnalyticsWorkspaceId' cannot be combined with 'containerAppEnvironmentId': it configures a new environment",
    );
  });

  it('keeps the name within the 32 characters of a container app name', () => {
    expect(errorOf(() => ({ name: `mcp-${'x'.repeat(29)}` }))).toBe(
      `stack/Fleet: 'name' ("mcp-xxxxxxxxxxxxxxxxxxxxxxxxxxxxx") must be 2-32 lowercase letters, digits and single hyphens, starting with a letter and ending with a letter or digit`,
    );
  });

  it('refuses two app secrets that map to one container app secret name', () => {
    expect(
      errorOf((scope) => ({
        app: { secretEnv: { API_KEY: sensitive(scope, 'a'), API__KEY: sensitive(scope, 'b') } },
      })),
    ).toBe(
      `stack/Fleet: 'app.secretEnv' has two variables that map to the container app secret "app-api-key": rename one`,
    );
  });
});

describe('AzureContainerAppsSessionFleet: output', () => {
  it('is deterministic and free of machine paths and timestamps', () => {
    const props = (scope: Construct) => ({ adminToken: sensitive(scope, 'admin_token') });
    const first = synth(props).json;
    expect(synth(props).json).toBe(first);
    expect(first).not.toContain(process.cwd());
    expect(first).not.toContain(tmpdir());
    expect(first).not.toMatch(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/);
  });

  it('matches the snapshot of the MCP session-isolation pattern', () => {
    const { json } = synth((scope) => ({
      name: 'mcp',
      policy: SESSION_POLICY,
      app: { cpu: 2, secretEnv: { OPENAI_API_KEY: keyVaultSecret(scope, 'OpenAiKey', 'openai-api-key') } },
      adminToken: sensitive(scope, 'admin_token'),
    }));
    expect(json).toMatchSnapshot();
  });
});
