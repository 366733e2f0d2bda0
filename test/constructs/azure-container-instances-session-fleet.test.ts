// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Terraform references such as ${var.x} are plain strings here
import { tmpdir } from 'node:os';
import { DataAzurermKeyVault } from '@cdktf/provider-azurerm/lib/data-azurerm-key-vault/index.js';
import { DataAzurermKeyVaultSecret } from '@cdktf/provider-azurerm/lib/data-azurerm-key-vault-secret/index.js';
import { TerraformVariable, Testing } from 'cdktf';
import type { Construct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { agentArgs } from '../../constructs/agent-container.js';
import {
  type AzureAppContainer,
  AzureContainerInstancesSessionFleet,
  type AzureContainerInstancesSessionFleetProps,
} from '../../constructs/azure-container-instances-session-fleet.js';
import { AGENT_WRAPPER_SCRIPT, appWrapperScript, wrapAgentCommand } from '../../constructs/azure-shared-fate.js';
import { AzureTrustedProxies, DEFAULT_AGENT_IMAGE, parsePolicy } from '../../constructs/index.js';

interface Probe {
  http_get: { path: string; port: number; scheme: string }[];
  initial_delay_seconds?: number;
  period_seconds: number;
  failure_threshold: number;
  timeout_seconds: number;
}
interface Volume {
  name: string;
  mount_path: string;
  read_only?: boolean;
  secret?: Record<string, string>;
  share_name?: string;
  storage_account_name?: string;
  storage_account_key?: string;
}
interface Container {
  name: string;
  image: string;
  cpu: number;
  memory: number;
  commands?: string[];
  ports?: { port: number; protocol: string }[];
  environment_variables?: Record<string, string>;
  secure_environment_variables?: Record<string, string>;
  volume?: Volume[];
  liveness_probe?: Probe;
  readiness_probe?: Probe;
}
interface Group {
  name: string;
  location: string;
  resource_group_name: string;
  os_type: string;
  sku: string;
  restart_policy: string;
  ip_address_type: string;
  dns_name_label: string;
  dns_name_label_reuse_policy: string;
  exposed_port: { port: number; protocol: string }[];
  image_registry_credential?: { server: string; username: string; password: string }[];
  container: Container[];
  tags?: Record<string, string>;
}
type Block = Record<string, Record<string, Record<string, unknown>>>;
interface Stack {
  resource: Block;
  data?: Block;
  output?: Record<string, { value: string; description: string }>;
  variable?: Record<string, Record<string, unknown>>;
}

const IMAGE = 'example.azurecr.io/copilot-cli:1.0.102';
const SUBNET = '/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aci';
const BASE: AzureContainerInstancesSessionFleetProps = {
  policy: { affinity: { type: 'copilot-jsonrpc' }, maxInstances: 3 },
  app: { image: IMAGE, port: 4321, command: ['copilot', '--headless', '--port', '4321'] },
  location: 'westeurope',
};

/** Props on top of BASE; `app` is merged with BASE's, so a test names only what it changes. */
type Extra = Omit<Partial<AzureContainerInstancesSessionFleetProps>, 'app'> & { app?: Partial<AzureAppContainer> };

function synth(extra: (scope: Construct) => Extra = () => ({})) {
  let fleet: AzureContainerInstancesSessionFleet | undefined;
  const json = Testing.synthScope((scope) => {
    const props = extra(scope);
    fleet = new AzureContainerInstancesSessionFleet(scope, 'Fleet', {
      ...BASE,
      ...props,
      app: { ...BASE.app, ...props.app },
    });
  });
  return { json, stack: JSON.parse(json) as Stack, fleet: fleet! };
}

function all<T>(stack: Stack, type: string, block: 'resource' | 'data' = 'resource'): T[] {
  return Object.values(stack[block]?.[type] ?? {}) as T[];
}

function one<T>(stack: Stack, type: string, block: 'resource' | 'data' = 'resource'): T {
  const items = all<T>(stack, type, block);
  expect(items, type).toHaveLength(1);
  return items[0]!;
}

function containers(group: Group): { app: Container; agent: Container } {
  const app = group.container.find((c) => c.name === 'app');
  const agent = group.container.find((c) => c.name === 'sessionfleet-agent');
  expect(group.container).toHaveLength(2);
  return { app: app!, agent: agent! };
}

function errorOf(extra: (scope: Construct) => Extra): string {
  try {
    synth(extra);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected the fleet to be rejected');
}

function decode(base64: string): string {
  return Buffer.from(base64, 'base64').toString('utf8');
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

describe('AzureContainerInstancesSessionFleet: what it synthesizes', () => {
  it('creates a resource group, a storage account and share, a Managed Redis and one container group by default', () => {
    const { stack, fleet } = synth();
    expect(Object.keys(stack.resource).sort()).toEqual([
      'azurerm_container_group',
      'azurerm_managed_redis',
      'azurerm_resource_group',
      'azurerm_storage_account',
      'azurerm_storage_share',
    ]);
    expect(stack.data).toBeUndefined();
    expect(fleet.instanceCount).toBe(1);
    expect(fleet.name).toMatch(/^sessionfleet-[0-9a-f]{8}$/);
    expect(one(stack, 'azurerm_resource_group')).toEqual({ name: `${fleet.name}-rg`, location: 'westeurope' });
  });

  it('stores session state in a StorageV2 account over HTTPS and TLS 1.2, in an SMB share with a quota', () => {
    const { stack, fleet } = synth();
    expect(fleet.storageAccountName).toMatch(/^sessionfleet[0-9a-f]{12}$/);
    expect(one(stack, 'azurerm_storage_account')).toEqual({
      name: fleet.storageAccountName,
      resource_group_name: '${azurerm_resource_group.Fleet_ResourceGroup_F7F4825D.name}',
      location: 'westeurope',
      account_kind: 'StorageV2',
      account_tier: 'Standard',
      account_replication_type: 'LRS',
      min_tls_version: 'TLS1_2',
      https_traffic_only_enabled: true,
      allow_nested_items_to_be_public: false,
    });
    expect(one(stack, 'azurerm_storage_share')).toEqual({
      name: 'session-state',
      quota: 100,
      enabled_protocol: 'SMB',
      storage_account_id: '${azurerm_storage_account.Fleet_SessionState_Account_8C46F708.id}',
    });
  });

  it('creates an Azure Managed Redis by default, TLS only, keys for the agents, nothing evicted', () => {
    const { stack, fleet } = synth();
    expect(fleet.redisSkuName).toBe('Balanced_B1');
    expect(stack.resource.azurerm_redis_cache).toBeUndefined();
    expect(one(stack, 'azurerm_managed_redis')).toEqual({
      name: fleet.redisCacheName,
      resource_group_name: '${azurerm_resource_group.Fleet_ResourceGroup_F7F4825D.name}',
      location: 'westeurope',
      sku_name: 'Balanced_B1',
      default_database: {
        access_keys_authentication_enabled: true,
        client_protocol: 'Encrypted',
        clustering_policy: 'EnterpriseCluster',
        eviction_policy: 'NoEviction',
      },
    });
    expect(fleet.managedRedis).toBeDefined();
    expect(fleet.redisCache).toBeUndefined();
  });

  it('still creates an Azure Cache for Redis reachable over TLS only when a retiring tier is asked for', () => {
    const { stack, fleet } = synth(() => ({ redisSkuName: 'Standard' }));
    expect(fleet.redisCacheName).toMatch(/^sessionfleet-[0-9a-f]{12}$/);
    expect(one(stack, 'azurerm_redis_cache')).toEqual({
      name: fleet.redisCacheName,
      resource_group_name: '${azurerm_resource_group.Fleet_ResourceGroup_F7F4825D.name}',
      location: 'westeurope',
      sku_name: 'Standard',
      family: 'C',
      capacity: 1,
      minimum_tls_version: '1.2',
      non_ssl_port_enabled: false,
      redis_version: '6',
    });
  });

  it('runs each instance as a Linux container group with a public IP that exposes only the agent port', () => {
    const { stack, fleet } = synth();
    const group = one<Group>(stack, 'azurerm_container_group');
    const name = `${fleet.name}-0`;
    expect(group).toMatchObject({
      name,
      location: 'westeurope',
      resource_group_name: '${azurerm_resource_group.Fleet_ResourceGroup_F7F4825D.name}',
      os_type: 'Linux',
      sku: 'Standard',
      restart_policy: 'Always',
      ip_address_type: 'Public',
      dns_name_label: name,
      // Secure: a hash of the label and the tenant is part of the FQDN, so nobody else can take it over.
      dns_name_label_reuse_policy: 'TenantReuse',
      exposed_port: [{ port: 8080, protocol: 'TCP' }],
    });
    expect(group.image_registry_credential).toBeUndefined();
    const { app, agent } = containers(group);
    expect(app.ports).toBeUndefined();
    expect(agent.ports).toEqual([{ port: 8080, protocol: 'TCP' }]);
  });

  it('runs the app with its command and resources, its session state on a volume of its group (not the share)', () => {
    const { stack, fleet } = synth();
    const { app } = containers(one<Group>(stack, 'azurerm_container_group'));
    expect(app).toEqual({
      name: 'app',
      image: IMAGE,
      cpu: 1,
      memory: 2,
      // The drain wrapper runs the command (docs/adr/0101): SIGTERM reaches it after the agent drained.
      commands: ['/bin/sh', '-c', appWrapperScript(fleet.policy), 'copilot', '--headless', '--port', '4321'],
      // Issue 14 §1 (ADR 0019): the share is the agent's alone; it stages the sessions this
      // instance serves into the app's directory.
      volume: [
        { name: 'app-session-state', mount_path: '/root/.copilot/session-state', empty_dir: true },
        { name: 'sessionfleet-run', mount_path: '/run/sessionfleet', empty_dir: true },
      ],
      // Restarts the app when the agent reports it unresponsive.
      liveness_probe: {
        http_get: [{ path: '/healthz', port: 9090, scheme: 'Http' }],
        initial_delay_seconds: 30,
        period_seconds: 10,
        failure_threshold: 3,
        timeout_seconds: 5,
      },
    });
  });

  it('runs the agent with the shared command line, its identity, Redis as a secret and probes on the admin port', () => {
    const { stack, fleet } = synth();
    const { agent } = containers(one<Group>(stack, 'azurerm_container_group'));
    const name = `${fleet.name}-0`;
    expect(agent.image).toBe(DEFAULT_AGENT_IMAGE);
    expect(agent.cpu).toBe(0.5);
    expect(agent.memory).toBe(1);
    const fleetName = agent.commands![agent.commands!.indexOf('--fleet') + 1]!;
    expect(agent.commands).toEqual(
      wrapAgentCommand([
        'sessionfleet-agent',
        ...agentArgs({
          policy: fleet.policy,
          appPort: 4321,
          fleetName,
          sessionStateDir: '/var/lib/sessionfleet/shared-state',
          appStateDir: '/var/lib/sessionfleet/app-state',
        }),
      ]),
    );
    expect(agent.commands).toEqual([
      '/bin/sh',
      '-c',
      AGENT_WRAPPER_SCRIPT,
      'sessionfleet-agent',
      '--policy',
      '/etc/sessionfleet/policy.json',
      '--upstream',
      'tcp://127.0.0.1:4321',
      '--listen',
      '0.0.0.0:8080',
      '--admin-listen',
      '0.0.0.0:9090',
      // Issue 16: two fleets on one Redis stay two fleets.
      '--fleet',
      expect.stringMatching(/^[a-z0-9-]+-[0-9a-f]{8}$/),
      // ADR 0019: the share (and its cleanup) is the agent's; the app's directory is staged into.
      '--session-state-dir',
      '/var/lib/sessionfleet/shared-state',
      '--app-state-dir',
      '/var/lib/sessionfleet/app-state',
    ]);
    // A single public instance has no peers: nothing to advertise.
    expect(agent.environment_variables).toEqual({ SESSIONFLEET_INSTANCE_ID: name });
    expect(agent.secure_environment_variables).toEqual({
      SESSIONFLEET_REDIS:
        'rediss://:${urlencode(azurerm_managed_redis.Fleet_Redis_ManagedRedis_3D7ABAB9.default_database[0].primary_access_key)}@${azurerm_managed_redis.Fleet_Redis_ManagedRedis_3D7ABAB9.hostname}:${azurerm_managed_redis.Fleet_Redis_ManagedRedis_3D7ABAB9.default_database[0].port}',
    });
    expect(agent.liveness_probe).toEqual({
      http_get: [{ path: '/healthz', port: 9090, scheme: 'Http' }],
      initial_delay_seconds: 10,
      period_seconds: 10,
      failure_threshold: 3,
      timeout_seconds: 5,
    });
    expect(agent.readiness_probe).toEqual({
      http_get: [{ path: '/readyz/serving', port: 9090, scheme: 'Http' }],
      period_seconds: 5,
      failure_threshold: 3,
      timeout_seconds: 5,
    });
  });

  it('mounts the validated policy for the agent, with min and max instances set to the fleet size', () => {
    const { stack, fleet } = synth(() => ({ instanceCount: 2, subnetIds: [SUBNET] }));
    expect(all(stack, 'azurerm_container_group')).toHaveLength(2);
    for (const group of all<Group>(stack, 'azurerm_container_group')) {
      const { agent } = containers(group);
      expect(agent.volume).toHaveLength(4);
      expect(agent.volume![1]).toEqual({
        name: 'session-state',
        mount_path: '/var/lib/sessionfleet/shared-state',
        share_name: '${azurerm_storage_share.Fleet_SessionState_Share_65433F5B.name}',
        storage_account_name: '${azurerm_storage_account.Fleet_SessionState_Account_8C46F708.name}',
        storage_account_key: '${azurerm_storage_account.Fleet_SessionState_Account_8C46F708.primary_access_key}',
      });
      expect(agent.volume![2]).toEqual({
        name: 'app-session-state',
        mount_path: '/var/lib/sessionfleet/app-state',
        empty_dir: true,
      });
      expect(agent.volume![3]).toEqual({ name: 'sessionfleet-run', mount_path: '/run/sessionfleet', empty_dir: true });
      const volume = agent.volume![0]!;
      expect(volume).toMatchObject({ name: 'sessionfleet-policy', mount_path: '/etc/sessionfleet', read_only: true });
      expect(Object.keys(volume.secret!)).toEqual(['policy.json']);
      const text = decode(volume.secret!['policy.json']!);
      expect(text).toBe(fleet.policyFile);
      // What the agent will read, checked by the agent's own parser.
      expect(parsePolicy(JSON.parse(text))).toEqual(fleet.policy);
      expect(JSON.parse(text)).toMatchObject({
        affinity: { type: 'copilot-jsonrpc' },
        minInstances: 2,
        maxInstances: 2,
        instanceVcpu: 1,
        sharedSessionState: true,
      });
    }
  });

  it('keeps an explicit sharedSessionState of the policy', () => {
    const { fleet } = synth(() => ({ policy: { ...BASE.policy, sharedSessionState: false } }));
    expect(fleet.policy.sharedSessionState).toBe(false);
  });

  it('runs instanceCount public groups, each advertising a CNAME in the given zone to its own FQDN', () => {
    const { stack, fleet } = synth(() => ({
      instanceCount: 3,
      name: 'copilot',
      publicDnsZone: { zoneName: 'fleet.example.com', resourceGroupName: 'rg-dns' },
    }));
    const groups = all<Group>(stack, 'azurerm_container_group');
    expect(groups.map((g) => g.name)).toEqual(['copilot-0', 'copilot-1', 'copilot-2']);
    expect(groups.map((g) => g.dns_name_label)).toEqual(['copilot-0', 'copilot-1', 'copilot-2']);
    expect(groups.map((g) => g.dns_name_label_reuse_policy)).toEqual(['TenantReuse', 'TenantReuse', 'TenantReuse']);
    expect(groups.map((g) => containers(g).agent.environment_variables)).toEqual(
      [0, 1, 2].map((i) => ({
        SESSIONFLEET_INSTANCE_ID: `copilot-${i}`,
        SESSIONFLEET_ADVERTISE: `http://copilot-${i}.fleet.example.com:8080`,
      })),
    );
    expect(all(stack, 'azurerm_dns_cname_record')).toEqual([
      {
        name: 'copilot-0',
        zone_name: 'fleet.example.com',
        resource_group_name: 'rg-dns',
        ttl: 60,
        record: '${azurerm_container_group.Fleet_Instance0_96F70352.fqdn}',
      },
      expect.objectContaining({
        name: 'copilot-1',
        record: '${azurerm_container_group.Fleet_Instance1_84ACC9F9.fqdn}',
      }),
      expect.objectContaining({
        name: 'copilot-2',
        record: '${azurerm_container_group.Fleet_Instance2_3F13EF03.fqdn}',
      }),
    ]);
    expect(fleet.instanceAddresses).toEqual([
      'http://copilot-0.fleet.example.com:8080',
      'http://copilot-1.fleet.example.com:8080',
      'http://copilot-2.fleet.example.com:8080',
    ]);
    expect(Object.values(stack.output!).map((o) => o.value)).toEqual(fleet.instanceAddresses);
    expect(Object.values(stack.output!)[1]!.description).toBe(
      "Address of instance 1 (copilot-1): its agent's client port.",
    );
    expect(fleet.containerGroups).toHaveLength(3);
    expect(fleet.instanceOutputs).toHaveLength(3);
    expect(fleet.dnsRecords).toHaveLength(3);
  });

  it('deploys into a virtual network: private IPs, no DNS label, each agent advertising its own interface', () => {
    const { stack, fleet, json } = synth(() => ({ instanceCount: 2, name: 'copilot', subnetIds: [SUBNET] }));
    const groups = all<Group & { subnet_ids?: string[] }>(stack, 'azurerm_container_group');
    for (const group of groups) {
      expect(group.ip_address_type).toBe('Private');
      expect(group.subnet_ids).toEqual([SUBNET]);
      expect(group.dns_name_label).toBeUndefined();
      expect(group.dns_name_label_reuse_policy).toBeUndefined();
      // The agent derives its address from its network interface: the group's private IP.
      expect(containers(group).agent.environment_variables!.SESSIONFLEET_ADVERTISE).toBeUndefined();
    }
    expect(stack.resource.azurerm_dns_cname_record).toBeUndefined();
    expect(fleet.instanceAddresses).toHaveLength(2);
    expect(Object.values(stack.output!).map((o) => o.value)).toEqual([
      'http://${azurerm_container_group.Fleet_Instance0_96F70352.ip_address}:8080',
      'http://${azurerm_container_group.Fleet_Instance1_84ACC9F9.ip_address}:8080',
    ]);
    expect(json).not.toContain('azurecontainer.io');
  });

  it('gives Redis and storage private endpoints in the network and closes their public endpoints', () => {
    const privateEndpoints = {
      subnetId:
        '/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/endpoints',
      virtualNetworkId: '/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet',
    };
    const { stack } = synth(() => ({ subnetIds: [SUBNET], privateEndpoints }));
    expect(one<{ public_network_access?: string }>(stack, 'azurerm_managed_redis').public_network_access).toBe(
      'Disabled',
    );
    expect(
      one<{ public_network_access_enabled?: boolean }>(stack, 'azurerm_storage_account').public_network_access_enabled,
    ).toBe(false);
    type Endpoint = {
      subnet_id: string;
      private_service_connection: {
        private_connection_resource_id: string;
        subresource_names: string[];
        is_manual_connection: boolean;
      };
      private_dns_zone_group: { private_dns_zone_ids: string[] };
    };
    const endpoints = all<Endpoint>(stack, 'azurerm_private_endpoint');
    expect(endpoints.map((e) => [e.subnet_id, e.private_service_connection.subresource_names])).toEqual([
      [privateEndpoints.subnetId, ['redisEnterprise']],
      [privateEndpoints.subnetId, ['file']],
    ]);
    expect(endpoints[1]!.private_service_connection.private_connection_resource_id).toBe(
      '${azurerm_storage_account.Fleet_SessionState_Account_8C46F708.id}',
    );
    expect(all<{ name: string }>(stack, 'azurerm_private_dns_zone').map((z) => z.name)).toEqual([
      'privatelink.redis.azure.net',
      'privatelink.file.core.windows.net',
    ]);
    for (const link of all<{ virtual_network_id: string }>(stack, 'azurerm_private_dns_zone_virtual_network_link'))
      expect(link.virtual_network_id).toBe(privateEndpoints.virtualNetworkId);
    expect(errorOf(() => ({ privateEndpoints }))).toBe(
      `stack/Fleet: 'privateEndpoints' needs 'subnetIds': groups with public IPs outside the virtual network could not reach the private Redis and storage`,
    );
  });

  it('gives a single public instance the address of its FQDN and warns that its traffic is in clear text', () => {
    const { stack, fleet } = synth();
    expect(Object.values(stack.output!).map((o) => o.value)).toEqual([
      'http://${azurerm_container_group.Fleet_Instance0_96F70352.fqdn}:8080',
    ]);
    const warnings = fleet.node.metadata.filter((m) => m.type === '@cdktf/warn').map((m) => String(m.data));
    expect(warnings).toEqual([
      `'subnetIds' is not set: the container groups get public IPs and clients' and peers' traffic, tokens included, crosses the internet in clear text; deploy into a virtual network ('subnetIds') unless a TLS-terminating proxy of yours fronts every instance`,
    ]);
  });

  it('uses an existing resource group and reads its location when none is given', () => {
    const { stack, fleet } = synth(() => ({ resourceGroupName: 'rg-sessions', location: undefined, name: 'copilot' }));
    expect(stack.resource.azurerm_resource_group).toBeUndefined();
    expect(fleet.resourceGroup).toBeUndefined();
    expect(one(stack, 'azurerm_resource_group', 'data')).toEqual({ name: 'rg-sessions' });
    const group = one<Group>(stack, 'azurerm_container_group');
    expect(group.resource_group_name).toBe('rg-sessions');
    expect(group.location).toBe('${data.azurerm_resource_group.Fleet_ExistingResourceGroup_7D4FDD0E.location}');
  });

  it('uses an existing resource group without a data source when the location is given', () => {
    const { stack } = synth(() => ({ resourceGroupName: 'rg-sessions' }));
    expect(stack.data).toBeUndefined();
    expect(stack.resource.azurerm_resource_group).toBeUndefined();
    expect(one<{ resource_group_name: string }>(stack, 'azurerm_storage_account').resource_group_name).toBe(
      'rg-sessions',
    );
  });

  it('hands Key Vault secrets to the agent and the app as secure environment variables and a secret volume', () => {
    const { stack } = synth((scope) => {
      const token = keyVaultSecret(scope, 'ConnectionToken', 'copilot-connection-token');
      return {
        upstreamToken: token,
        adminToken: keyVaultSecret(scope, 'AdminToken', 'sessionfleet-admin-token'),
        principals: keyVaultSecret(scope, 'Principals', 'sessionfleet-principals'),
        app: {
          secretEnv: {
            COPILOT_GITHUB_TOKEN: keyVaultSecret(scope, 'GitHubToken', 'copilot-github-token'),
            COPILOT_CONNECTION_TOKEN: token,
          },
          env: { COPILOT_LOG_LEVEL: 'info' },
        },
      };
    });
    const { app, agent } = containers(one<Group>(stack, 'azurerm_container_group'));
    expect(app.environment_variables).toEqual({ COPILOT_LOG_LEVEL: 'info' });
    expect(app.secure_environment_variables).toEqual({
      COPILOT_CONNECTION_TOKEN: '${data.azurerm_key_vault_secret.ConnectionToken.value}',
      COPILOT_GITHUB_TOKEN: '${data.azurerm_key_vault_secret.GitHubToken.value}',
    });
    expect(agent.secure_environment_variables).toMatchObject({
      SESSIONFLEET_UPSTREAM_TOKEN: '${data.azurerm_key_vault_secret.ConnectionToken.value}',
      SESSIONFLEET_ADMIN_TOKEN: '${data.azurerm_key_vault_secret.AdminToken.value}',
    });
    const principals = agent.commands!.indexOf('--principals');
    expect(agent.commands!.slice(principals, principals + 2)).toEqual([
      '--principals',
      '/etc/sessionfleet-principals/principals.json',
    ]);
    expect(agent.volume!.find((v) => v.name === 'sessionfleet-principals')).toEqual({
      name: 'sessionfleet-principals',
      mount_path: '/etc/sessionfleet-principals',
      read_only: true,
      secret: { 'principals.json': '${base64encode(data.azurerm_key_vault_secret.Principals.value)}' },
    });
  });

  it('passes the principal header and the app health path to the agent', () => {
    const { stack } = synth(() => ({
      policy: { affinity: { type: 'mcp-streamable-http' }, maxInstances: 3 },
      principalHeader: 'x-user',
      trustedProxies: AzureTrustedProxies.anySource('the tests stand for a proxy-only network'),
      app: { healthPath: '/health' },
    }));
    const { agent } = containers(one<Group>(stack, 'azurerm_container_group'));
    expect(agent.commands!.slice(-4)).toEqual(['--principal-header', 'x-user', '--health-path', '/health']);
  });

  it("passes the tenant header to every instance's agent, so an HTTP fleet behind a proxy has tenant quotas", () => {
    const { stack, fleet } = synth(() => ({
      policy: { affinity: { type: 'mcp-streamable-http' }, maxInstances: 2, sessionsPerTenant: 10 },
      principalHeader: 'x-user',
      trustedProxies: AzureTrustedProxies.anySource('the tests stand for a proxy-only network'),
      tenantHeader: 'x-tenant',
      instanceCount: 2,
      subnetIds: [SUBNET],
    }));
    const groups = all<Group>(stack, 'azurerm_container_group');
    expect(groups).toHaveLength(2);
    for (const group of groups) {
      const { agent } = containers(group);
      expect(agent.commands!.slice(-4)).toEqual(['--principal-header', 'x-user', '--tenant-header', 'x-tenant']);
      expect(agent.environment_variables!.SESSIONFLEET_TENANT).toBeUndefined();
    }
    expect(fleet.policy.sessionsPerTenant).toBe(10);
  });

  it('passes a tenant header known only at apply time through unchecked', () => {
    const { stack } = synth((scope) => ({
      policy: { affinity: { type: 'cookie' } },
      tenantHeader: new TerraformVariable(scope, 'tenant_header', { type: 'string' }).stringValue,
    }));
    const { agent } = containers(one<Group>(stack, 'azurerm_container_group'));
    expect(agent.commands!.slice(-2)).toEqual(['--tenant-header', '${var.tenant_header}']);
  });

  it('uses an existing Redis URL from a sensitive variable and creates no cache', () => {
    const { stack, fleet } = synth((scope) => ({ redisUrl: sensitive(scope, 'redis_url') }));
    expect(stack.resource.azurerm_redis_cache).toBeUndefined();
    expect(fleet.redisCache).toBeUndefined();
    const { agent } = containers(one<Group>(stack, 'azurerm_container_group'));
    expect(agent.secure_environment_variables).toEqual({ SESSIONFLEET_REDIS: '${var.redis_url}' });
    expect(stack.variable!.redis_url).toEqual({ type: 'string', sensitive: true });
  });

  it('creates a Premium cache in the P family', () => {
    const { stack } = synth(() => ({ redisSkuName: 'Premium', redisCapacity: 2, redisCacheName: 'sessions-cache' }));
    expect(one(stack, 'azurerm_redis_cache')).toMatchObject({
      name: 'sessions-cache',
      sku_name: 'Premium',
      family: 'P',
      capacity: 2,
    });
  });

  it('pulls the app from a private registry with a password from a secret', () => {
    const { stack } = synth((scope) => ({
      registryServer: 'example.azurecr.io',
      registryUsername: 'puller',
      registryPassword: sensitive(scope, 'registry_password'),
    }));
    expect(one<Group>(stack, 'azurerm_container_group').image_registry_credential).toEqual([
      { server: 'example.azurecr.io', username: 'puller', password: '${var.registry_password}' },
    ]);
  });

  it('pulls the app with its own identity from a registry given by ID, granted AcrPull first', () => {
    const registryId = '/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/example';
    const { stack, fleet } = synth(() => ({ registryServer: 'example.azurecr.io', containerRegistryId: registryId }));
    const group = one<Group & { identity: unknown; depends_on: string[] }>(stack, 'azurerm_container_group');
    const identity = `\${azurerm_user_assigned_identity.${fleet.identity!.identity.friendlyUniqueId}.id}`;
    expect(group.identity).toEqual({ type: 'UserAssigned', identity_ids: [identity] });
    expect(group.image_registry_credential).toEqual([
      { server: 'example.azurecr.io', user_assigned_identity_id: identity },
    ]);
    expect(one<{ role_definition_name: string; scope: string }>(stack, 'azurerm_role_assignment')).toMatchObject({
      role_definition_name: 'AcrPull',
      scope: registryId,
    });
    expect(group.depends_on).toHaveLength(1);
  });

  it('applies names, sizes, paths and tags from its props', () => {
    const { stack, fleet } = synth(() => ({
      name: 'copilot',
      storageAccountName: 'copilotsessions01',
      shareName: 'copilot-sessions',
      shareQuotaGiB: 512,
      sessionStatePath: '/home/app/.copilot/session-state',
      app: { cpu: 2, memoryMiB: 3584 },
      agent: { image: 'example.azurecr.io/sessionfleet-agent:0.1.0', cpu: 0.25, memoryMiB: 512 },
      tags: { team: 'platform' },
    }));
    expect(one(stack, 'azurerm_storage_account')).toMatchObject({
      name: 'copilotsessions01',
      tags: { team: 'platform' },
    });
    expect(one(stack, 'azurerm_storage_share')).toMatchObject({ name: 'copilot-sessions', quota: 512 });
    expect(one(stack, 'azurerm_resource_group')).toEqual({
      name: 'copilot-rg',
      location: 'westeurope',
      tags: { team: 'platform' },
    });
    expect(one(stack, 'azurerm_managed_redis')).toMatchObject({ tags: { team: 'platform' } });
    const group = one<Group>(stack, 'azurerm_container_group');
    expect(group.tags).toEqual({ team: 'platform' });
    const { app, agent } = containers(group);
    expect(app).toMatchObject({ cpu: 2, memory: 3.5 });
    expect(app.volume![0]!.mount_path).toBe('/home/app/.copilot/session-state');
    expect(agent).toMatchObject({ image: 'example.azurecr.io/sessionfleet-agent:0.1.0', cpu: 0.25, memory: 0.5 });
    expect(fleet.policy.instanceVcpu).toBe(2);
  });

  it('accepts values only known at apply time without checking them', () => {
    const { stack } = synth((scope) => ({
      storageAccountName: new TerraformVariable(scope, 'storage_account', { type: 'string' }).stringValue,
    }));
    expect(one<{ name: string }>(stack, 'azurerm_storage_account').name).toBe('${var.storage_account}');
  });

  it('lets Terraform encode a policy that holds a value known only at apply time', () => {
    const { stack } = synth((scope) => ({
      policy: {
        affinity: { type: 'copilot-jsonrpc' },
        sessionIdleTimeoutSeconds: new TerraformVariable(scope, 'idle_seconds', { type: 'number' }).numberValue,
      },
    }));
    const { agent } = containers(one<Group>(stack, 'azurerm_container_group'));
    expect(agent.volume![0]!.secret!['policy.json']).toBe(
      '${base64encode(jsonencode({"isolation" = "shared", "affinity" = {"type" = "copilot-jsonrpc"}, "sessionsPerInstance" = 20, "concurrencyPerInstance" = 200, "sessionLifetimeSeconds" = 21600, "sessionIdleTimeoutSeconds" = var.idle_seconds, "minInstances" = 1, "maxInstances" = 1, "expiredSessionStatus" = 404, "evictionPolicy" = "reject", "drainTimeoutSeconds" = 30, "asyncInvocation" = false, "sharedSessionState" = true, "recycleAfterSession" = false, "failOpen" = false, "placementWaitSeconds" = 5, "instanceVcpu" = 1, "limits" = {"streamsPerInstance" = 100, "evictIdleAfterSeconds" = 120}}))}',
    );
  });

  it('turns policy warnings into construct warnings', () => {
    const { fleet } = synth(() => ({
      app: { cpu: 2 },
      policy: { isolation: 'request', affinity: { type: 'none' }, concurrencyPerInstance: 50 },
      subnetIds: ['${var.subnet_id}'],
    }));
    expect(fleet.node.metadata.filter((m) => m.type === '@cdktf/warn').map((m) => m.data)).toEqual([
      'concurrencyPerInstance (50) is ignored under request isolation: it is forced to 1',
    ]);
    expect(fleet.policy.concurrencyPerInstance).toBe(1);
  });
});

describe('AzureContainerInstancesSessionFleet: secrets never reach the synthesized JSON', () => {
  it('writes only references where secrets go', () => {
    const { json, stack } = synth((scope) => ({
      upstreamToken: sensitive(scope, 'connection_token'),
      adminToken: keyVaultSecret(scope, 'AdminToken', 'sessionfleet-admin-token'),
      principals: sensitive(scope, 'principals'),
      app: { secretEnv: { COPILOT_GITHUB_TOKEN: keyVaultSecret(scope, 'GitHubToken', 'copilot-github-token') } },
      instanceCount: 2,
      subnetIds: [SUBNET],
    }));
    const reference = /^(\$\{[^}]+\}|rediss:\/\/:\$\{urlencode\([^)]+\)\}@\$\{[^}]+\}:\$\{[^}]+\})$/;
    for (const group of all<Group>(stack, 'azurerm_container_group')) {
      for (const container of group.container) {
        for (const value of Object.values(container.secure_environment_variables ?? {})) {
          expect(value).toMatch(reference);
        }
      }
      const principals = containers(group).agent.volume!.find((v) => v.name === 'sessionfleet-principals')!;
      expect(principals.secret).toEqual({ 'principals.json': '${base64encode(var.principals)}' });
    }
    // Sensitive variables carry no value of their own.
    for (const variable of Object.values(stack.variable!))
      expect(variable).toEqual({ type: 'string', sensitive: true });
    expect(json).not.toMatch(/primary_access_key"\s*:/);
  });

  it('refuses a plain string secret without repeating it', () => {
    const message = errorOf(() => ({ upstreamToken: 'tok-9f2c-plain-secret' }));
    expect(message).toBe(
      "stack/Fleet: 'upstreamToken' is a plain string: pass a reference (a Key Vault secret data source, a sensitive TerraformVariable or a resource attribute) so the secret is not written into the synthesized JSON",
    );
    expect(message).not.toContain('tok-9f2c-plain-secret');
  });

  it('refuses a sensitive variable with a default, which would be written into the JSON', () => {
    const message = errorOf((scope) => ({
      adminToken: new TerraformVariable(scope, 'admin_token', {
        type: 'string',
        sensitive: true,
        default: 'adm-7d41-default-secret',
      }),
    }));
    expect(message).toBe(
      'stack/Fleet: \'adminToken\' (variable "admin_token") must not have a default: the default would be written into the synthesized JSON; give the value at apply time (TF_VAR_admin_token)',
    );
    expect(message).not.toContain('adm-7d41-default-secret');
  });

  it('refuses a variable that is not sensitive', () => {
    expect(errorOf((scope) => ({ redisUrl: new TerraformVariable(scope, 'redis_url', { type: 'string' }) }))).toBe(
      `stack/Fleet: 'redisUrl' (variable "redis_url") must be declared with sensitive: true, so Terraform keeps its value out of plans and logs`,
    );
  });

  it('refuses a data source that is not a Key Vault secret', () => {
    expect(
      errorOf((scope) => ({
        app: {
          secretEnv: {
            COPILOT_GITHUB_TOKEN: new DataAzurermKeyVault(scope, 'Vault', { name: 'kv', resourceGroupName: 'rg' }),
          },
        },
      })),
    ).toBe(
      `stack/Fleet: 'app.secretEnv.COPILOT_GITHUB_TOKEN' is a data source of type "azurerm_key_vault": only "azurerm_key_vault_secret" data sources hold a secret value`,
    );
  });
});

describe('AzureContainerInstancesSessionFleet: validation', () => {
  it('refuses recycling it could not make real: without the drain wrapper an exited agent restarts beside the same app', () => {
    expect(
      errorOf(() => ({
        app: { command: undefined, cpu: 2 },
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
    expect(errorOf(() => ({ app: { command: undefined }, drainWrapper: true }))).toBe(
      `stack/Fleet: 'drainWrapper' needs 'app.command': the wrapper starts the app itself, and the image's own entrypoint is not known at synth time`,
    );
  });

  it('says what a fleet without the drain wrapper gets', () => {
    const { fleet } = synth(() => ({ app: { command: ['node', 'server.js'] }, drainWrapper: false }));
    expect(fleet.node.metadata.filter((m) => m.type === '@cdktf/warn').map((m) => m.data)).toContain(
      `'drainWrapper' is off (no 'app.command', or set to false): the app receives SIGTERM together with the agent, so sessions still in flight when the instance stops may end before the agent has drained them`,
    );
  });

  it('requires a choice of who may send the principal header, and refuses ranges it cannot enforce', () => {
    const HTTP = { affinity: { type: 'mcp-streamable-http' }, maxInstances: 3 } as const;
    expect(errorOf(() => ({ policy: HTTP, principalHeader: 'x-user' }))).toBe(
      `stack/Fleet: 'trustedProxies' is required with 'principalHeader' ("x-user"): the agent takes the principal from that header on every request reaching its client port, so any source that reaches it could name any user; give AzureTrustedProxies.from({ cidrs }) with your proxy's addresses, or AzureTrustedProxies.anySource(reason)`,
    );
    expect(
      errorOf(() => ({
        policy: HTTP,
        principalHeader: 'x-user',
        trustedProxies: AzureTrustedProxies.from({ cidrs: ['203.0.113.0/24'] }),
      })),
    ).toBe(
      `stack/Fleet: 'trustedProxies' address ranges cannot be enforced on Azure Container Instances: a container group has no ingress filter and the agent does not check source addresses; deploy into a virtual network ('subnetIds') whose network security group admits only your proxy to port 8080, and acknowledge it with AzureTrustedProxies.anySource(reason)`,
    );
  });

  it('refuses tenant isolation: its agents would not know the tenant they serve', () => {
    expect(errorOf(() => ({ policy: { isolation: 'tenant', affinity: { type: 'copilot-jsonrpc' } } }))).toBe(
      "stack/Fleet: 'policy.isolation' (\"tenant\") is not available on Azure: under tenant isolation every agent must be told the one tenant its instance serves (--tenant), which the Azure fleets do not do; use KubernetesSessionFleet's tenants, or another isolation mode",
    );
  });

  it('checks the 2-vCPU rule of session isolation against the app container', () => {
    const policy = { isolation: 'session', affinity: { type: 'copilot-jsonrpc' } } as const;
    expect(errorOf(() => ({ policy }))).toBe(
      "stack/Fleet: 'policy.instanceVcpu': session isolation requires an instance with at least 2 vCPU (instanceVcpu is 1)",
    );
    expect(synth(() => ({ policy, app: { cpu: 2 } })).fleet.policy).toMatchObject({
      sessionsPerInstance: 1,
      instanceVcpu: 2,
    });
  });

  it('checks the 2-vCPU rule of request isolation', () => {
    expect(errorOf(() => ({ policy: { isolation: 'request', affinity: { type: 'none' } }, app: { cpu: 1.5 } }))).toBe(
      "stack/Fleet: 'policy.instanceVcpu': request isolation requires an instance with at least 2 vCPU (instanceVcpu is 1.5)",
    );
  });

  it('bounds instanceCount by the policy', () => {
    expect(errorOf(() => ({ instanceCount: 4, subnetIds: [SUBNET] }))).toBe(
      "stack/Fleet: 'instanceCount' (4) must not exceed 'policy.maxInstances' (3)",
    );
    expect(errorOf(() => ({ instanceCount: 1, policy: { ...BASE.policy, minInstances: 2 } }))).toBe(
      "stack/Fleet: 'instanceCount' (1) must not be below 'policy.minInstances' (2)",
    );
    expect(errorOf(() => ({ instanceCount: 1.5 }))).toBe(
      "stack/Fleet: 'instanceCount' (1.5) must be a whole number above 0",
    );
  });

  it('refuses several public instances that could not reach each other, and a DNS zone inside a network', () => {
    expect(errorOf(() => ({ instanceCount: 3 }))).toBe(
      `stack/Fleet: 'subnetIds' or 'publicDnsZone' is required when 'instanceCount' (3) is above 1: a public group's FQDN carries a hash known only after it is created, so without a virtual network (recommended) or a DNS zone for stable names its peers could not reach it`,
    );
    expect(
      errorOf(() => ({
        subnetIds: [SUBNET],
        publicDnsZone: { zoneName: 'fleet.example.com', resourceGroupName: 'rg-dns', ttlSeconds: 0 },
      })),
    ).toBe(
      [
        'stack/Fleet: 2 problems:',
        `  - 'publicDnsZone' cannot be combined with 'subnetIds': in a virtual network the groups have private IPs only`,
        `  - 'publicDnsZone.ttlSeconds' (0) must be a whole number above 0`,
      ].join('\n'),
    );
    expect(errorOf(() => ({ subnetIds: [] }))).toBe(
      `stack/Fleet: 'subnetIds' must name at least one subnet (or leave it out for public IPs)`,
    );
  });

  it('validates the storage account name', () => {
    expect(errorOf(() => ({ storageAccountName: 'Copilot_Sessions' }))).toBe(
      `stack/Fleet: 'storageAccountName' ("Copilot_Sessions") must be 3-24 lowercase letters and digits (storage account names are global across Azure)`,
    );
    expect(errorOf(() => ({ storageAccountName: 'copilotsessionsforteamalpha' }))).toBe(
      `stack/Fleet: 'storageAccountName' ("copilotsessionsforteamalpha") must be 3-24 lowercase letters and digits (storage account names are global across Azure)`,
    );
  });

  it('validates the base name against the container group and DNS label rules', () => {
    expect(errorOf(() => ({ name: 'Copilot--Fleet' }))).toBe(
      `stack/Fleet: 'name' ("Copilot--Fleet") must be 2-59 lowercase letters, digits and single hyphens, starting with a letter and ending with a letter or digit`,
    );
    expect(synth(() => ({ name: `c${'x'.repeat(58)}` })).fleet.name).toHaveLength(59);
    expect(errorOf(() => ({ name: `c${'x'.repeat(59)}` }))).toMatch(/'name' \("cx+\.\.\.\) must be 2-59 lowercase/);
  });

  it('keeps the app off the agent ports', () => {
    expect(errorOf(() => ({ app: { port: 8080 } }))).toBe(
      "stack/Fleet: 'app.port' (8080) must not be 8080 or 9090: the agent listens on those ports in the same instance",
    );
    expect(errorOf(() => ({ app: { port: 70000 } }))).toBe(
      "stack/Fleet: 'app.port' (70000) must be a whole number between 1 and 65535",
    );
  });

  it('needs a location for a new resource group', () => {
    expect(errorOf(() => ({ location: undefined }))).toBe(
      "stack/Fleet: 'location' is required when no 'resourceGroupName' is given (a new resource group is created)",
    );
  });

  it('checks sizes, the share and paths', () => {
    expect(errorOf(() => ({ app: { cpu: 0 } }))).toBe("stack/Fleet: 'app.cpu' (0) must be a number of vCPUs above 0");
    expect(errorOf(() => ({ agent: { memoryMiB: -1 } }))).toBe(
      "stack/Fleet: 'agent.memoryMiB' (-1) must be a whole number of MiB above 0",
    );
    expect(errorOf(() => ({ shareQuotaGiB: 6000 }))).toBe(
      "stack/Fleet: 'shareQuotaGiB' (6000) must be a whole number between 1 and 5120",
    );
    expect(errorOf(() => ({ shareName: 'Sessions' }))).toBe(
      `stack/Fleet: 'shareName' ("Sessions") must be 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit`,
    );
    expect(errorOf(() => ({ sessionStatePath: 'state' }))).toBe(
      `stack/Fleet: 'sessionStatePath' ("state") must be an absolute path`,
    );
    expect(errorOf(() => ({ app: { healthPath: 'health' } }))).toBe(
      `stack/Fleet: 'app.healthPath' ("health") must start with /`,
    );
    expect(
      errorOf(() => ({
        principalHeader: 'x user',
        trustedProxies: AzureTrustedProxies.anySource('the tests stand for a proxy-only network'),
      })),
    ).toBe(
      `stack/Fleet: 'principalHeader' ("x user") must be a valid HTTP header name (letters, digits and !#$%&'*+-.^_\`|~)`,
    );
  });

  it('checks the tenant header as the agent does, and refuses it where it could name no tenant', () => {
    const HTTP = { affinity: { type: 'header', headerName: 'x-session' } } as const;
    expect(errorOf(() => ({ policy: HTTP, tenantHeader: 'x tenant' }))).toBe(
      `stack/Fleet: 'tenantHeader' ("x tenant") must be a valid HTTP header name (letters, digits and !#$%&'*+-.^_\`|~)`,
    );
    expect(
      errorOf(() => ({
        policy: HTTP,
        principalHeader: 'X-User',
        tenantHeader: 'x-user',
        trustedProxies: AzureTrustedProxies.anySource('the tests stand for a proxy-only network'),
      })),
    ).toBe(
      `stack/Fleet: 'tenantHeader' ("x-user") must not be the header naming the principal ('principalHeader' "X-User")`,
    );
    expect(errorOf(() => ({ policy: HTTP, tenantHeader: 'X-Session' }))).toBe(
      `stack/Fleet: 'tenantHeader' ("X-Session") must not be the header that carries the session id ('policy.affinity.headerName' "x-session")`,
    );
    expect(
      errorOf(() => ({
        policy: HTTP,
        principalHeader: 'X-Session',
        trustedProxies: AzureTrustedProxies.anySource('the tests stand for a proxy-only network'),
      })),
    ).toBe(
      `stack/Fleet: 'principalHeader' ("X-Session") must not be the header that carries the session id ('policy.affinity.headerName' "x-session")`,
    );
    // BASE is a Copilot CLI fleet: its front reads no HTTP headers.
    expect(
      errorOf(() => ({
        principalHeader: 'x-user',
        trustedProxies: AzureTrustedProxies.anySource('the tests stand for a proxy-only network'),
      })),
    ).toBe(
      `stack/Fleet: 'principalHeader' ("x-user") is read by the HTTP front only, and 'policy.affinity.type' "copilot-jsonrpc" is served by the Copilot front, which has no HTTP headers: name a Copilot client's principal in its entry of the principals file ('principals') instead`,
    );
    expect(errorOf(() => ({ tenantHeader: 'x-tenant' }))).toBe(
      `stack/Fleet: 'tenantHeader' ("x-tenant") is read by the HTTP front only, and 'policy.affinity.type' "copilot-jsonrpc" is served by the Copilot front, which has no HTTP headers: name a Copilot client's tenant in its entry of the principals file ('principals') instead`,
    );
  });

  it('checks the Redis props', () => {
    expect(errorOf(() => ({ redisSkuName: 'Premium', redisCapacity: 0 }))).toBe(
      "stack/Fleet: 'redisCapacity' (0) must be a whole number between 1 and 5 for the Premium SKU",
    );
    expect(errorOf(() => ({ redisSkuName: 'Enterprise' }))).toBe(
      `stack/Fleet: 'redisSkuName' ("Enterprise") must be an Azure Managed Redis SKU (Balanced_B<n>, MemoryOptimized_M<n>, ComputeOptimized_X<n>, FlashOptimized_A<n>, e.g. "Balanced_B1") or one of "Basic", "Standard", "Premium"`,
    );
    expect(errorOf(() => ({ redisSkuName: 'Balanced_B3', redisCapacity: 2 }))).toBe(
      `stack/Fleet: 'redisCapacity' only applies to the Azure Cache for Redis SKUs ("Basic", "Standard", "Premium"): an Azure Managed Redis ("Balanced_B3") is sized by its SKU`,
    );
    expect(errorOf(() => ({ redisCacheName: '-cache' }))).toBe(
      `stack/Fleet: 'redisCacheName' ("-cache") must be 1-63 letters, digits and single hyphens, starting and ending with a letter or digit (Redis cache names are global across Azure)`,
    );
    expect(errorOf((scope) => ({ redisUrl: sensitive(scope, 'redis_url'), redisSkuName: 'Basic' }))).toBe(
      "stack/Fleet: 'redisSkuName' cannot be combined with 'redisUrl': no Redis is created when an existing one is given",
    );
  });

  it('checks environment variables and registry credentials', () => {
    expect(
      errorOf((scope) => ({
        app: { env: { TOKEN: 'x' }, secretEnv: { TOKEN: sensitive(scope, 'token') } },
      })),
    ).toBe(`stack/Fleet: environment variable "TOKEN" is set in both 'app.env' and 'app.secretEnv'`);
    expect(errorOf(() => ({ app: { env: { '1X': 'x' } } }))).toBe(
      `stack/Fleet: 'app.env' has the variable name "1X": names must be letters, digits and underscores, not starting with a digit`,
    );
    expect(errorOf(() => ({ registryServer: 'example.azurecr.io' }))).toBe(
      "stack/Fleet: 'registryServer', 'registryUsername' and 'registryPassword' must be given together (or 'registryServer' with 'containerRegistryId')",
    );
  });

  it('reports every problem of the props and the policy at once', () => {
    expect(
      errorOf(() => ({
        name: 'Fleet',
        storageAccountName: 'x',
        policy: { affinity: { type: 'header', headerName: 'cookie' }, sessionsPerInstance: 300 },
      })),
    ).toBe(
      [
        'stack/Fleet: 4 problems:',
        `  - 'name' ("Fleet") must be 2-59 lowercase letters, digits and single hyphens, starting with a letter and ending with a letter or digit`,
        `  - 'storageAccountName' ("x") must be 3-24 lowercase letters and digits (storage account names are global across Azure)`,
        `  - 'policy.affinity.headerName' ("cookie") is reserved: the agent or HTTP itself uses that header`,
        `  - 'policy.sessionsPerInstance' (300) must be between 1 and 200`,
      ].join('\n'),
    );
  });
});

describe('AzureContainerInstancesSessionFleet: output', () => {
  it('is deterministic and free of machine paths and timestamps', () => {
    const props = (scope: Construct) => ({
      upstreamToken: sensitive(scope, 'connection_token'),
      instanceCount: 2,
      subnetIds: [SUBNET],
    });
    const first = synth(props).json;
    expect(synth(props).json).toBe(first);
    expect(first).not.toContain(process.cwd());
    expect(first).not.toContain(tmpdir());
    expect(first).not.toMatch(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/);
  });

  it('matches the snapshot of the seed pattern (Copilot CLI, Key Vault secrets, three instances)', () => {
    const { json } = synth((scope) => {
      const token = keyVaultSecret(scope, 'ConnectionToken', 'copilot-connection-token');
      return {
        name: 'copilot',
        instanceCount: 3,
        subnetIds: [SUBNET],
        upstreamToken: token,
        principals: keyVaultSecret(scope, 'Principals', 'sessionfleet-principals'),
        app: {
          ...BASE.app,
          secretEnv: {
            COPILOT_GITHUB_TOKEN: keyVaultSecret(scope, 'GitHubToken', 'copilot-github-token'),
            COPILOT_CONNECTION_TOKEN: token,
          },
        },
      };
    });
    expect(json).toMatchSnapshot();
  });
});
