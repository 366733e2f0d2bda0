/**
 * A fleet of session-holding servers on Azure Container Instances, as in the Copilot SDK scaling
 * guide: N container groups, each running the app and the sessionfleet agent side by side, an
 * Azure Files share for session state mounted in every instance, and Redis for the agents.
 */
import {
  ContainerGroup,
  type ContainerGroupContainer,
  type ContainerGroupContainerVolume,
} from '@cdktf/provider-azurerm/lib/container-group/index.js';
import { DnsCnameRecord } from '@cdktf/provider-azurerm/lib/dns-cname-record/index.js';
import type { ManagedRedis } from '@cdktf/provider-azurerm/lib/managed-redis/index.js';
import type { RedisCache } from '@cdktf/provider-azurerm/lib/redis-cache/index.js';
import type { ResourceGroup } from '@cdktf/provider-azurerm/lib/resource-group/index.js';
import type { StorageAccount } from '@cdktf/provider-azurerm/lib/storage-account/index.js';
import type { StorageShare } from '@cdktf/provider-azurerm/lib/storage-share/index.js';
import { Annotations, Fn, TerraformOutput, Token } from 'cdktf';
import type { Construct } from 'constructs';
import {
  AGENT_ADMIN_PORT,
  AGENT_CLIENT_PORT,
  AGENT_ENV,
  AGENT_EXECUTABLE,
  AGENT_HEALTH_PATH,
  AGENT_SERVING_PATH,
  POLICY_FILE_NAME,
  POLICY_MOUNT_PATH,
  PRINCIPALS_FILE_NAME,
  PRINCIPALS_MOUNT_PATH,
} from '../policy/agent-interface.js';
import { describeValue } from '../policy/format.js';
import type { Policy } from '../policy/index.js';
import {
  AGENT_APP_STATE_PATH,
  AGENT_SHARED_STATE_PATH,
  policyFileContent,
  stagesSessionState,
} from './agent-container.js';
import {
  AGENT_CONTAINER_NAME,
  APP_CONTAINER_NAME,
  AzureSessionFleetBase,
  type AzureSessionFleetBaseProps,
  checkAzureFleetProps,
  createAzureFleetFoundation,
  resolveAzurePolicy,
} from './azure-fleet-base.js';
import { AzureFleetIdentity } from './azure-fleet-identity.js';
import { agentSecretEnvs, appSecretEnvs, secretValue } from './azure-secrets.js';
import { RUN_DIR, RUN_VOLUME, resolveDrainWrapper, wrapAgentCommand, wrapAppCommand } from './azure-shared-fate.js';
import { trustedProxiesProblems } from './azure-trusted-proxies.js';
import { SessionFleetValidationError } from './fleet-policy.js';

// The types both Azure fleets' props use, public with the first of them.
export type {
  AzureAgentContainer,
  AzureAppContainer,
  AzureSessionFleetBaseProps,
  ResolvedAzureAgentContainer,
  ResolvedAzureAppContainer,
} from './azure-fleet-base.js';
export type { RedisSku } from './azure-fleet-redis.js';
export type { AzureSecretSource } from './azure-secrets.js';
export { AzureTrustedProxies } from './azure-trusted-proxies.js';

export interface AzureContainerInstancesSessionFleetProps extends AzureSessionFleetBaseProps {
  /**
   * How many container groups (instances) the fleet runs. Container Instances does not autoscale,
   * so this is the fleet's size: it must lie between the policy's `minInstances` and
   * `maxInstances`, and the agents get a policy with both set to it, so a full fleet answers 429 at
   * once instead of waiting for a scale-out that cannot come. Lowering it removes the instances
   * with the highest numbers. A change of the policy, or of anything in the containers, replaces
   * every group at once (a full outage; docs/adr/0101).
   * @see https://learn.microsoft.com/azure/container-instances/container-instances-container-groups
   * @default - the policy's `minInstances`
   */
  readonly instanceCount?: number;

  /**
   * Subnets to deploy every container group into (each delegated to
   * `Microsoft.ContainerInstance/containerGroups`): the recommended mode. Groups get private IPs
   * only, clients and peer agents reach them inside the virtual network, and each agent advertises
   * the address of its own network interface (the group's private IP), which its peers in the
   * network can reach. The network is the trust boundary: agent-to-agent hops are plain HTTP/TCP
   * inside it (docs/adr/0101-azure-recycling-drain-and-network.md).
   * @see https://learn.microsoft.com/azure/container-instances/container-instances-vnet
   * @default - public IPs (not recommended: clients' and peers' traffic, tokens included, crosses the internet in clear text)
   */
  readonly subnetIds?: string[];

  /**
   * Public mode only: an Azure DNS zone in which the fleet creates one CNAME per instance,
   * `<group name>.<zone>` → the group's own FQDN. The group's FQDN carries a hash (the secure DNS
   * label reuse policy "TenantReuse") and is only known once the group exists, so the agent
   * advertises the CNAME, which is known in advance; the record is removed with its group. Required
   * in public mode when `instanceCount` is above 1 (peers must reach each other).
   * @see https://learn.microsoft.com/azure/container-instances/how-to-reuse-dns-names
   * @default - no records; a single public instance advertises nothing its peers need
   */
  readonly publicDnsZone?: AzurePublicDnsZone;
}

/** An existing Azure DNS zone (public) the fleet writes its instances' CNAME records into. */
export interface AzurePublicDnsZone {
  /** The zone's name, e.g. `fleet.example.com`. */
  readonly zoneName: string;
  /** The resource group holding the zone. */
  readonly resourceGroupName: string;
  /**
   * TTL of the records in seconds.
   * @default 60
   */
  readonly ttlSeconds?: number;
}

/** `<name>-<index>` must stay within the 63 characters of a container group name and DNS label. */
const NAME_MAX_LENGTH = 59;
const SESSION_STATE_VOLUME = 'session-state';
/** The app's private session state when the agent stages it (ADR 0019): local to the group. */
const APP_STATE_VOLUME = 'app-session-state';
const POLICY_VOLUME = 'sessionfleet-policy';
const PRINCIPALS_VOLUME = 'sessionfleet-principals';
const DEFAULT_RECORD_TTL_SECONDS = 60;

/**
 * Azure Container Instances fleet (the Copilot SDK guide's deployment, rebuilt): a resource group
 * (existing or new), a storage account and file share for session state, Redis (or an existing
 * one) and `instanceCount` container groups. Each group runs the app and the agent; only the
 * agent's client port (8080) is exposed. With `subnetIds` (recommended) the groups have private IPs
 * in your virtual network and each agent advertises its own; without it each group has a public
 * IP and a DNS label under the secure "TenantReuse" policy. Each instance's address is a Terraform
 * output.
 *
 * Secrets (Redis URL, tokens, the principals file, the app's secret variables) reach the
 * containers as secure environment variables or secret volumes, always as references.
 */
export class AzureContainerInstancesSessionFleet extends AzureSessionFleetBase {
  public readonly instanceCount: number;

  /** The policy the agents run with: validated, defaults filled in, min and max instances = `instanceCount`. */
  public readonly policy: Policy;
  /** The policy file as mounted at /etc/sessionfleet/policy.json. */
  public readonly policyFile: string;
  /** Reference to the resource group's name. */
  public readonly resourceGroupName: string;
  public readonly location: string;
  /** The resource group, when the fleet created it. */
  public readonly resourceGroup?: ResourceGroup;
  public readonly storageAccount: StorageAccount;
  public readonly share: StorageShare;
  /** The Azure Managed Redis, when the fleet created one (the default). */
  public readonly managedRedis?: ManagedRedis;
  /** The Azure Cache for Redis, when the fleet created one of those tiers ('redisSkuName'). */
  public readonly redisCache?: RedisCache;
  /** The fleet's managed identity, when it pulls from `containerRegistryId`. */
  public readonly identity?: AzureFleetIdentity;
  /** One container group per instance, in index order. */
  public readonly containerGroups: readonly ContainerGroup[];
  /** The URL each instance's agent is reached at (and advertises to its peers), in index order. */
  public readonly instanceAddresses: readonly string[];
  /** One output per instance with its address. */
  public readonly instanceOutputs: readonly TerraformOutput[];
  /** Public mode with `publicDnsZone`: one CNAME per instance to its group's FQDN, in index order. */
  public readonly dnsRecords: readonly DnsCnameRecord[];

  constructor(scope: Construct, id: string, props: AzureContainerInstancesSessionFleetProps) {
    super(scope, id, props);
    const settings = this.settings;

    const problems = checkAzureFleetProps(props, settings, NAME_MAX_LENGTH);
    const resolved = resolveAzurePolicy(this, props.policy, settings.app.cpu);
    problems.push(...resolved.problems);
    const instanceCount = props.instanceCount ?? resolved.policy?.minInstances;
    if (resolved.policy !== undefined) problems.push(...checkInstanceCount(instanceCount, resolved.policy));
    problems.push(...checkNetworkProps(props, instanceCount));
    if (this.app.args !== undefined && this.app.command === undefined) {
      problems.push(
        `'app.args' needs 'app.command' on Azure Container Instances: a container group's command line replaces the image's entrypoint and command`,
      );
    }
    problems.push(
      ...trustedProxiesProblems(props.principalHeader, props.trustedProxies, {
        cidrsEnforced: false,
        name: 'Azure Container Instances',
      }),
    );
    const wrapper = resolveDrainWrapper(props, resolved.policy);
    problems.push(...wrapper.problems);
    if (problems.length > 0 || resolved.policy === undefined || instanceCount === undefined) {
      throw new SessionFleetValidationError(this, problems);
    }
    for (const warning of resolved.warnings) Annotations.of(this).addWarning(warning);
    if (wrapper.warning !== undefined) Annotations.of(this).addWarning(wrapper.warning);
    if (props.subnetIds === undefined) {
      Annotations.of(this).addWarning(
        `'subnetIds' is not set: the container groups get public IPs and clients' and peers' traffic, tokens included, crosses the internet in clear text; deploy into a virtual network ('subnetIds') unless a TLS-terminating proxy of yours fronts every instance`,
      );
    }
    this.instanceCount = instanceCount;
    this.policy = { ...resolved.policy, minInstances: instanceCount, maxInstances: instanceCount };
    this.policyFile = policyFileContent(this.policy);

    const foundation = createAzureFleetFoundation(this, props, settings);
    this.resourceGroupName = foundation.resourceGroupName;
    this.location = foundation.location;
    this.resourceGroup = foundation.resourceGroup;
    this.storageAccount = foundation.storage.storageAccount;
    this.share = foundation.storage.share;
    this.managedRedis = foundation.redis?.managedRedis;
    this.redisCache = foundation.redis?.cache;

    // The two containers' scripts meet on this volume (the same name in both: one volume of the group).
    const runVolume: ContainerGroupContainerVolume[] = wrapper.wrap
      ? [{ name: RUN_VOLUME, mountPath: RUN_DIR, emptyDir: true }]
      : [];
    // In front of the Copilot CLI the share is the agent's alone; the app gets a directory local to
    // the group, into which the agent stages the sessions it serves (ADR 0019).
    const staged = stagesSessionState(this.policy, true);
    const sharedVolume = (mountPath: string): ContainerGroupContainerVolume => ({
      name: SESSION_STATE_VOLUME,
      mountPath,
      shareName: foundation.storage.shareName,
      storageAccountName: foundation.storage.accountName,
      storageAccountKey: foundation.storage.accessKey,
    });
    const app: ContainerGroupContainer = {
      name: APP_CONTAINER_NAME,
      image: this.app.image,
      cpu: this.app.cpu,
      memory: settings.appMemoryGiB,
      commands:
        wrapper.wrap && settings.appCommandLine !== undefined
          ? wrapAppCommand(this.policy, settings.appCommandLine)
          : settings.appCommandLine,
      environmentVariables: nonEmpty({ ...this.app.env }),
      secureEnvironmentVariables: nonEmpty(Object.fromEntries(appSecretEnvs(props).map((s) => [s.env, s.value]))),
      volume: [
        staged
          ? { name: APP_STATE_VOLUME, mountPath: this.sessionStatePath, emptyDir: true }
          : sharedVolume(this.sessionStatePath),
        ...runVolume,
      ],
      // The agent's /healthz fails when the app stops answering; probing it from the app container
      // restarts the app, not only the agent (the containers of a group share one network).
      livenessProbe: {
        httpGet: [{ path: AGENT_HEALTH_PATH, port: AGENT_ADMIN_PORT, scheme: 'Http' }],
        initialDelaySeconds: 30,
        periodSeconds: 10,
        failureThreshold: 3,
        timeoutSeconds: 5,
      },
    };

    // The policy is not secret, but a secret volume is the only way Container Instances mounts a
    // file whose content is given inline; the agent reads it with --policy like on every platform.
    const agentVolumes: ContainerGroupContainerVolume[] = [
      {
        name: POLICY_VOLUME,
        mountPath: POLICY_MOUNT_PATH,
        readOnly: true,
        secret: { [POLICY_FILE_NAME]: policyFileBase64(this.policy, this.policyFile) },
      },
    ];
    if (staged) {
      agentVolumes.push(sharedVolume(AGENT_SHARED_STATE_PATH), {
        name: APP_STATE_VOLUME,
        mountPath: AGENT_APP_STATE_PATH,
        emptyDir: true,
      });
    }
    agentVolumes.push(...runVolume);
    if (props.principals !== undefined) {
      agentVolumes.push({
        name: PRINCIPALS_VOLUME,
        mountPath: PRINCIPALS_MOUNT_PATH,
        readOnly: true,
        secret: { [PRINCIPALS_FILE_NAME]: Fn.base64encode(secretValue(props.principals)) },
      });
    }
    const args = this.agentCommandArgs(props, this.policy);
    const agentSecrets = Object.fromEntries(agentSecretEnvs(props, foundation.redisUrl).map((s) => [s.env, s.value]));
    if (props.containerRegistryId !== undefined) {
      this.identity = new AzureFleetIdentity(this, 'Identity', {
        name: this.name,
        resourceGroupName: this.resourceGroupName,
        location: this.location,
        containerRegistryId: props.containerRegistryId,
        keyVaultIds: [],
        tags: props.tags,
      });
    }
    const identityId = this.identity?.identity.id;
    const registry =
      props.registryServer === undefined
        ? undefined
        : identityId !== undefined
          ? [{ server: props.registryServer, userAssignedIdentityId: identityId }]
          : props.registryUsername !== undefined && props.registryPassword !== undefined
            ? [
                {
                  server: props.registryServer,
                  username: props.registryUsername,
                  password: secretValue(props.registryPassword),
                },
              ]
            : undefined;

    const privateNetwork = props.subnetIds !== undefined;
    const groups: ContainerGroup[] = [];
    const addresses: string[] = [];
    const outputs: TerraformOutput[] = [];
    const records: DnsCnameRecord[] = [];
    for (let index = 0; index < instanceCount; index++) {
      const groupName = `${this.name}-${index}`;
      // In a virtual network the agent derives its address from its own network interface (the
      // group's private IP, which ACI assigns at creation). In public mode the group's FQDN holds a
      // hash only known after creation, so peers are told a CNAME to it, known in advance.
      const zone = props.publicDnsZone;
      const advertised =
        privateNetwork || zone === undefined ? undefined : `http://${groupName}.${zone.zoneName}:${AGENT_CLIENT_PORT}`;
      const agentEnv: Record<string, string> = { [AGENT_ENV.instanceId]: groupName };
      if (props.agent?.logLevel !== undefined) agentEnv[AGENT_ENV.logLevel] = this.agent.logLevel;
      if (advertised !== undefined) agentEnv[AGENT_ENV.advertise] = advertised;
      const agent: ContainerGroupContainer = {
        name: AGENT_CONTAINER_NAME,
        image: this.agent.image,
        cpu: this.agent.cpu,
        memory: settings.agentMemoryGiB,
        commands: wrapper.wrap ? wrapAgentCommand([AGENT_EXECUTABLE, ...args]) : [AGENT_EXECUTABLE, ...args],
        ports: [{ port: AGENT_CLIENT_PORT, protocol: 'TCP' }],
        environmentVariables: agentEnv,
        secureEnvironmentVariables: agentSecrets,
        volume: agentVolumes,
        livenessProbe: {
          httpGet: [{ path: AGENT_HEALTH_PATH, port: AGENT_ADMIN_PORT, scheme: 'Http' }],
          initialDelaySeconds: 10,
          periodSeconds: 10,
          failureThreshold: 3,
          timeoutSeconds: 5,
        },
        readinessProbe: {
          httpGet: [{ path: AGENT_SERVING_PATH, port: AGENT_ADMIN_PORT, scheme: 'Http' }],
          periodSeconds: 5,
          failureThreshold: 3,
          timeoutSeconds: 5,
        },
      };
      const group = new ContainerGroup(this, `Instance${index}`, {
        name: groupName,
        resourceGroupName: this.resourceGroupName,
        location: this.location,
        osType: 'Linux',
        sku: 'Standard',
        restartPolicy: 'Always',
        ...(privateNetwork
          ? { ipAddressType: 'Private', subnetIds: props.subnetIds }
          : {
              ipAddressType: 'Public',
              dnsNameLabel: groupName,
              // A hash of the label and the tenant is added to the FQDN, so nobody outside the
              // tenant can take the name over once the group is deleted.
              dnsNameLabelReusePolicy: 'TenantReuse',
            }),
        exposedPort: [{ port: AGENT_CLIENT_PORT, protocol: 'TCP' }],
        imageRegistryCredential: registry,
        identity: identityId !== undefined ? { type: 'UserAssigned', identityIds: [identityId] } : undefined,
        // The group pulls its image with the identity's AcrPull role at creation.
        dependsOn: this.identity !== undefined ? [...this.identity.roleAssignments] : undefined,
        container: [app, agent],
        tags: props.tags,
      });
      groups.push(group);
      const address = privateNetwork
        ? `http://${group.ipAddress}:${AGENT_CLIENT_PORT}`
        : (advertised ?? `http://${group.fqdn}:${AGENT_CLIENT_PORT}`);
      if (!privateNetwork && zone !== undefined) {
        records.push(
          new DnsCnameRecord(this, `Instance${index}Record`, {
            name: groupName,
            zoneName: zone.zoneName,
            resourceGroupName: zone.resourceGroupName,
            ttl: zone.ttlSeconds ?? DEFAULT_RECORD_TTL_SECONDS,
            record: group.fqdn,
            tags: props.tags,
          }),
        );
      }
      addresses.push(address);
      outputs.push(
        new TerraformOutput(this, `Instance${index}Address`, {
          value: address,
          description: `Address of instance ${index} (${groupName}): its agent's client port.`,
        }),
      );
    }
    this.dnsRecords = records;
    this.containerGroups = groups;
    this.instanceAddresses = addresses;
    this.instanceOutputs = outputs;
  }
}

function checkInstanceCount(count: number | undefined, policy: Policy): string[] {
  if (count === undefined) {
    return [`'instanceCount' is required when 'policy.minInstances' is only known at apply time`];
  }
  if (Token.isUnresolved(count)) {
    return [`'instanceCount' must be known at synth time: it is the number of container groups`];
  }
  if (!Number.isInteger(count) || count < 1) {
    return [`'instanceCount' (${describeValue(count)}) must be a whole number above 0`];
  }
  const { minInstances, maxInstances } = policy;
  if (!Token.isUnresolved(maxInstances) && count > maxInstances) {
    return [`'instanceCount' (${count}) must not exceed 'policy.maxInstances' (${maxInstances})`];
  }
  if (!Token.isUnresolved(minInstances) && count < minInstances) {
    return [`'instanceCount' (${count}) must not be below 'policy.minInstances' (${minInstances})`];
  }
  return [];
}

function checkNetworkProps(props: AzureContainerInstancesSessionFleetProps, count: number | undefined): string[] {
  const problems: string[] = [];
  const subnets = props.subnetIds;
  if (subnets === undefined && props.privateEndpoints !== undefined) {
    problems.push(
      `'privateEndpoints' needs 'subnetIds': groups with public IPs outside the virtual network could not reach the private Redis and storage`,
    );
  }
  if (subnets !== undefined) {
    if (!Token.isUnresolved(subnets) && subnets.length === 0) {
      problems.push(`'subnetIds' must name at least one subnet (or leave it out for public IPs)`);
    }
    if (props.publicDnsZone !== undefined) {
      problems.push(
        `'publicDnsZone' cannot be combined with 'subnetIds': in a virtual network the groups have private IPs only`,
      );
    }
  } else if (props.publicDnsZone === undefined && count !== undefined && Number.isInteger(count) && count > 1) {
    problems.push(
      `'subnetIds' or 'publicDnsZone' is required when 'instanceCount' (${count}) is above 1: a public group's FQDN carries a hash known only after it is created, so without a virtual network (recommended) or a DNS zone for stable names its peers could not reach it`,
    );
  }
  const ttl = props.publicDnsZone?.ttlSeconds;
  if (ttl !== undefined && !Token.isUnresolved(ttl) && (!Number.isInteger(ttl) || ttl < 1)) {
    problems.push(`'publicDnsZone.ttlSeconds' (${describeValue(ttl)}) must be a whole number above 0`);
  }
  return problems;
}

function nonEmpty(record: Record<string, string>): Record<string, string> | undefined {
  return Object.keys(record).length > 0 ? record : undefined;
}

/**
 * The policy file in base64, encoded at synth time when every value is known. A value known only at
 * apply time (a variable, say) makes Terraform encode it instead, as compact JSON: the same policy.
 */
function policyFileBase64(policy: Policy, file: string): string {
  return Object.values(policy).some((value) => Token.isUnresolved(value))
    ? Fn.base64encode(Fn.jsonencode(policy))
    : Buffer.from(file, 'utf8').toString('base64');
}
