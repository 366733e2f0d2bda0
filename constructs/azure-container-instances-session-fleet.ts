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
  AGENT_READY_PATH,
  POLICY_FILE_NAME,
  POLICY_MOUNT_PATH,
  PRINCIPALS_FILE_NAME,
  PRINCIPALS_MOUNT_PATH,
} from '../policy/agent-interface.js';
import { describeValue } from '../policy/format.js';
import type { Policy } from '../policy/index.js';
import { agentArgs, policyFileContent } from './agent-container.js';
import {
  AGENT_CONTAINER_NAME,
  APP_CONTAINER_NAME,
  AzureSessionFleetBase,
  type AzureSessionFleetBaseProps,
  agentSecretEnvs,
  appSecretEnvs,
  checkAzureFleetProps,
  createAzureFleetFoundation,
  resolveAzurePolicy,
} from './azure-fleet-base.js';
import { regionName } from './azure-naming.js';
import { secretValue } from './azure-secrets.js';
import { SessionFleetValidationError } from './fleet-policy.js';

// The types both Azure fleets' props use, public with the first of them.
export type { AzureSessionFleetBaseProps } from './azure-fleet-base.js';
export type { RedisSku } from './azure-fleet-redis.js';
export type { AzureSecretSource } from './azure-secrets.js';

export interface AzureContainerInstancesSessionFleetProps extends AzureSessionFleetBaseProps {
  /**
   * How many container groups (instances) the fleet runs. Container Instances does not autoscale,
   * so this is the fleet's size: it must lie between the policy's `minInstances` and
   * `maxInstances`, and the agents get a policy with both set to it, so a full fleet answers 429 at
   * once instead of waiting for a scale-out that cannot come. Lowering it removes the instances
   * with the highest numbers.
   * @see https://learn.microsoft.com/azure/container-instances/container-instances-container-groups
   * @default - the policy's `minInstances`
   */
  readonly instanceCount?: number;
}

/** `<name>-<index>` must stay within the 63 characters of a container group name and DNS label. */
const NAME_MAX_LENGTH = 59;
const SESSION_STATE_VOLUME = 'session-state';
const POLICY_VOLUME = 'sessionfleet-policy';
const PRINCIPALS_VOLUME = 'sessionfleet-principals';

/**
 * Azure Container Instances fleet (the Copilot SDK guide's deployment, rebuilt): a resource group
 * (existing or new), a storage account and file share for session state, Redis (Azure Cache for
 * Redis over TLS, or an existing one) and `instanceCount` container groups. Each group runs the
 * app and the agent; only the agent's client port (8080) is exposed, on a public IP with the DNS
 * name `<name>-<index>.<region>.azurecontainer.io`, which is also the address the agent advertises
 * to its peers. Each instance's address is a Terraform output.
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
  /** The Azure Cache for Redis, when the fleet created it. */
  public readonly redisCache?: RedisCache;
  /** One container group per instance, in index order. */
  public readonly containerGroups: readonly ContainerGroup[];
  /** The URL each instance's agent is reached at (and advertises to its peers), in index order. */
  public readonly instanceAddresses: readonly string[];
  /** One output per instance with its address. */
  public readonly instanceOutputs: readonly TerraformOutput[];

  constructor(scope: Construct, id: string, props: AzureContainerInstancesSessionFleetProps) {
    super(scope, id, props);
    const settings = this.settings;

    const problems = checkAzureFleetProps(props, settings, NAME_MAX_LENGTH);
    const resolved = resolveAzurePolicy(this, props.policy, settings.cpuCores);
    problems.push(...resolved.problems);
    const instanceCount = props.instanceCount ?? resolved.policy?.minInstances;
    if (resolved.policy !== undefined) problems.push(...checkInstanceCount(instanceCount, resolved.policy));
    if (problems.length > 0 || resolved.policy === undefined || instanceCount === undefined) {
      throw new SessionFleetValidationError(this, problems);
    }
    for (const warning of resolved.warnings) Annotations.of(this).addWarning(warning);
    this.instanceCount = instanceCount;
    this.policy = { ...resolved.policy, minInstances: instanceCount, maxInstances: instanceCount };
    this.policyFile = policyFileContent(this.policy);

    const foundation = createAzureFleetFoundation(this, props, settings);
    this.resourceGroupName = foundation.resourceGroupName;
    this.location = foundation.location;
    this.resourceGroup = foundation.resourceGroup;
    this.storageAccount = foundation.storage.storageAccount;
    this.share = foundation.storage.share;
    this.redisCache = foundation.redis?.cache;

    const app: ContainerGroupContainer = {
      name: APP_CONTAINER_NAME,
      image: props.image,
      cpu: this.cpuCores,
      memory: this.memoryGiB,
      commands: props.command,
      environmentVariables: nonEmpty(props.environment ?? {}),
      secureEnvironmentVariables: nonEmpty(Object.fromEntries(appSecretEnvs(props).map((s) => [s.env, s.value]))),
      volume: [
        {
          name: SESSION_STATE_VOLUME,
          mountPath: this.sessionStatePath,
          shareName: foundation.storage.shareName,
          storageAccountName: foundation.storage.accountName,
          storageAccountKey: foundation.storage.accessKey,
        },
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
    if (props.principals !== undefined) {
      agentVolumes.push({
        name: PRINCIPALS_VOLUME,
        mountPath: PRINCIPALS_MOUNT_PATH,
        readOnly: true,
        secret: { [PRINCIPALS_FILE_NAME]: Fn.base64encode(secretValue(props.principals)) },
      });
    }
    const args = agentArgs({
      policy: this.policy,
      appPort: props.appPort,
      principals: props.principals !== undefined,
      principalHeader: props.principalHeader,
      tenantHeader: props.tenantHeader,
      appHealthPath: props.appHealthPath,
    });
    const agentSecrets = Object.fromEntries(agentSecretEnvs(props, foundation.redisUrl).map((s) => [s.env, s.value]));
    const registry =
      props.registryServer !== undefined && props.registryUsername !== undefined && props.registryPassword !== undefined
        ? [
            {
              server: props.registryServer,
              username: props.registryUsername,
              password: secretValue(props.registryPassword),
            },
          ]
        : undefined;

    const region = regionName(this.location);
    const groups: ContainerGroup[] = [];
    const addresses: string[] = [];
    const outputs: TerraformOutput[] = [];
    for (let index = 0; index < instanceCount; index++) {
      const groupName = `${this.name}-${index}`;
      // The FQDN is known before the group exists (label + region), so each agent can be told its
      // own address without a reference cycle; the "Unsecure" reuse policy keeps it that simple
      // (the other policies add a hash to the label).
      const address = `http://${groupName}.${region}.azurecontainer.io:${AGENT_CLIENT_PORT}`;
      const agent: ContainerGroupContainer = {
        name: AGENT_CONTAINER_NAME,
        image: this.agentImage,
        cpu: this.agentCpuCores,
        memory: this.agentMemoryGiB,
        commands: [AGENT_EXECUTABLE, ...args],
        ports: [{ port: AGENT_CLIENT_PORT, protocol: 'TCP' }],
        environmentVariables: { [AGENT_ENV.instanceId]: groupName, [AGENT_ENV.advertise]: address },
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
          httpGet: [{ path: AGENT_READY_PATH, port: AGENT_ADMIN_PORT, scheme: 'Http' }],
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
        ipAddressType: 'Public',
        dnsNameLabel: groupName,
        dnsNameLabelReusePolicy: 'Unsecure',
        exposedPort: [{ port: AGENT_CLIENT_PORT, protocol: 'TCP' }],
        imageRegistryCredential: registry,
        container: [app, agent],
        tags: props.tags,
      });
      groups.push(group);
      addresses.push(address);
      outputs.push(
        new TerraformOutput(this, `Instance${index}Address`, {
          value: `http://${group.fqdn}:${AGENT_CLIENT_PORT}`,
          description: `Address of instance ${index} (${groupName}): its agent's client port.`,
        }),
      );
    }
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
