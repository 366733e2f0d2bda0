/**
 * A fleet of session-holding servers on Azure Container Apps: one container app whose replicas each
 * run the app and the sessionfleet agent, scaled by Container Apps between the policy's min and max
 * instances, with session state on an Azure Files share registered with the environment.
 */
import { createHash } from 'node:crypto';
import {
  ContainerApp,
  type ContainerAppSecret,
  type ContainerAppTemplateContainer,
  type ContainerAppTemplateContainerEnv,
  type ContainerAppTemplateCustomScaleRule,
} from '@cdktf/provider-azurerm/lib/container-app/index.js';
import { ContainerAppEnvironment } from '@cdktf/provider-azurerm/lib/container-app-environment/index.js';
import { ContainerAppEnvironmentStorage } from '@cdktf/provider-azurerm/lib/container-app-environment-storage/index.js';
import { LogAnalyticsWorkspace } from '@cdktf/provider-azurerm/lib/log-analytics-workspace/index.js';
import type { ManagedRedis } from '@cdktf/provider-azurerm/lib/managed-redis/index.js';
import type { RedisCache } from '@cdktf/provider-azurerm/lib/redis-cache/index.js';
import type { ResourceGroup } from '@cdktf/provider-azurerm/lib/resource-group/index.js';
import type { StorageAccount } from '@cdktf/provider-azurerm/lib/storage-account/index.js';
import type { StorageShare } from '@cdktf/provider-azurerm/lib/storage-share/index.js';
import { Annotations, TerraformOutput, Token } from 'cdktf';
import type { Construct } from 'constructs';
import {
  AGENT_ADMIN_PORT,
  AGENT_CLIENT_PORT,
  AGENT_ENV,
  AGENT_EXECUTABLE,
  AGENT_HEALTH_PATH,
  AGENT_SERVING_PATH,
  FLEET_SCALE_LIST_SUFFIX,
  fleetKeyPrefix,
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
  terminationGracePeriodSeconds,
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
import { agentSecretEnvs, appSecretEnvs, keyVaultSecretOf, type SecretEnv, secretValue } from './azure-secrets.js';
import { RUN_DIR, RUN_VOLUME, resolveDrainWrapper, wrapAgentCommand, wrapAppCommand } from './azure-shared-fate.js';
import { trustedProxiesProblems } from './azure-trusted-proxies.js';
import { SessionFleetValidationError } from './fleet-policy.js';

export interface AzureContainerAppsSessionFleetProps extends AzureSessionFleetBaseProps {
  /**
   * An existing Container Apps environment to run the fleet in.
   * @default - a new environment named `<name>-env`
   */
  readonly containerAppEnvironmentId?: string;

  /**
   * Log Analytics workspace of a new environment.
   * @default - a new workspace named `<name>-logs` keeping logs 30 days
   */
  readonly logAnalyticsWorkspaceId?: string;

  /**
   * Subnet of a new environment (a VNet-integrated environment). External TCP ingress, which the
   * Copilot CLI's JSON-RPC needs, is only available in such an environment.
   * @see https://learn.microsoft.com/azure/container-apps/ingress-overview#tcp
   * @default - an Azure-managed network
   */
  readonly infrastructureSubnetId?: string;

  /**
   * Whether the agents are reachable from the internet (true) or only from the environment (false).
   * @default true
   */
  readonly externalIngress?: boolean;

  /**
   * Hand Key Vault secrets (secret sources that are `azurerm_key_vault_secret` data sources) to
   * Container Apps by reference (`key_vault_secret_id`), read at run time by the fleet's managed
   * identity, which gets "Key Vault Secrets User" on each vault (the vault must use Azure RBAC).
   * The secret values then never enter the container app's configuration, its revisions or its
   * Terraform state; the data source itself still reads its value into the state (a Terraform
   * data-source property). Set false to pass values instead.
   * @see https://learn.microsoft.com/azure/container-apps/manage-secrets#reference-secret-from-key-vault
   * @default true
   */
  readonly keyVaultReferences?: boolean;
}

/** Container app names are 2-32 characters. */
const NAME_MAX_LENGTH = 32;
/** Container Apps allows at most 600 s between SIGTERM and SIGKILL. */
const MAX_GRACE_SECONDS = 600;
/** The consumption plan's largest replica. */
const MAX_REPLICA_CPU = 4;
/** The consumption plan's memory: 0.5 GiB steps, 2 GiB per vCPU of the replica. */
const MEMORY_STEP_MIB = 512;
const MIB_PER_CPU = 2048;
const SESSION_STATE_VOLUME = 'session-state';
/** The app's private session state when the agent stages it (ADR 0019): replica-local. */
const APP_STATE_VOLUME = 'app-session-state';
const SECRETS_VOLUME = 'sessionfleet-secrets';
/**
 * Container Apps mounts each secret as a file named after the secret, and secret names allow no
 * dot, so the agent reads `/etc/sessionfleet/policy` rather than `policy.json`.
 */
const POLICY_SECRET = 'policy';
const PRINCIPALS_SECRET = 'principals';
const REGISTRY_SECRET = 'registry-password';
/** The Redis access key alone, for the KEDA scale rule's authentication. */
const SCALE_REDIS_SECRET = 'scale-redis-key';
/** Not read by the agent: it only changes the template when the policy changes. */
const POLICY_DIGEST_ENV = 'POLICY_SHA256';

/**
 * Azure Container Apps fleet: a Container Apps environment (existing or new, with its Log Analytics
 * workspace), the session-state share registered with it, Redis (Azure Cache for Redis over TLS, or
 * an existing one) and one container app. Each replica runs the app and the agent; ingress goes to
 * the agent's client port (8080); Container Apps scales the replicas between the policy's
 * `minInstances` and `maxInstances` with a concurrency rule; the agent is probed on `/healthz` and
 * `/readyz`.
 *
 * Secrets are container app secrets whose values are references. The policy file is delivered as a
 * secret too: a secret volume is the only way Container Apps mounts a file given inline.
 */
export class AzureContainerAppsSessionFleet extends AzureSessionFleetBase {
  public readonly externalIngress: boolean;

  /** The policy the agents run with: validated, defaults filled in. */
  public readonly policy: Policy;
  /** The policy file, as the agent reads it from /etc/sessionfleet/policy. */
  public readonly policyFile: string;
  /** Fewest and most replicas: the policy's `minInstances` and `maxInstances`. */
  public readonly minReplicas: number;
  /**
   * What Container Apps scales on: `sessions` (a KEDA Redis rule on the agents' scale list) when the
   * fleet creates its Redis, `requests` (open requests or connections per replica) with `redisUrl`.
   */
  public readonly scaleOn: 'sessions' | 'requests';
  public readonly maxReplicas: number;
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
  /** The environment and its workspace, when the fleet created them. */
  public readonly environment?: ContainerAppEnvironment;
  public readonly logAnalyticsWorkspace?: LogAnalyticsWorkspace;
  public readonly containerAppEnvironmentId: string;
  /** The share as the environment knows it. */
  public readonly environmentStorage: ContainerAppEnvironmentStorage;
  public readonly containerApp: ContainerApp;
  /** The fleet's managed identity, when it pulls from `containerRegistryId` or reads Key Vault secrets by reference. */
  public readonly identity?: AzureFleetIdentity;
  /** Where clients connect: `https://<fqdn>`, or `tcp://<fqdn>:8080` for the Copilot CLI's JSON-RPC. */
  public readonly address: string;
  public readonly addressOutput: TerraformOutput;

  constructor(scope: Construct, id: string, props: AzureContainerAppsSessionFleetProps) {
    super(scope, id, props);
    const settings = this.settings;
    this.externalIngress = props.externalIngress ?? true;

    const problems = checkAzureFleetProps(props, settings, NAME_MAX_LENGTH);
    problems.push(...checkReplicaResources(this, props.app?.memoryMiB !== undefined));
    const resolved = resolveAzurePolicy(this, props.policy, settings.app.cpu);
    problems.push(...resolved.problems);
    const tcp = resolved.policy?.affinity.type === 'copilot-jsonrpc';
    problems.push(...checkEnvironmentProps(props, this.externalIngress, tcp));
    if (resolved.policy !== undefined) problems.push(...checkGracePeriod(resolved.policy));
    problems.push(
      ...trustedProxiesProblems(props.principalHeader, props.trustedProxies, {
        cidrsEnforced: true,
        name: 'Azure Container Apps',
      }),
    );
    const wrapper = resolveDrainWrapper(props, resolved.policy);
    problems.push(...wrapper.problems);
    const appSecrets = appSecretEnvs(props);
    problems.push(...checkSecretNames(appSecrets.map((s) => s.secretName)));
    if (problems.length > 0 || resolved.policy === undefined) {
      throw new SessionFleetValidationError(this, problems);
    }
    for (const warning of resolved.warnings) Annotations.of(this).addWarning(warning);
    if (wrapper.warning !== undefined) Annotations.of(this).addWarning(wrapper.warning);
    this.policy = resolved.policy;
    this.policyFile = policyFileContent(this.policy);
    this.minReplicas = this.policy.minInstances;
    this.maxReplicas = this.policy.maxInstances;

    const foundation = createAzureFleetFoundation(this, props, settings);
    this.resourceGroupName = foundation.resourceGroupName;
    this.location = foundation.location;
    this.resourceGroup = foundation.resourceGroup;
    this.storageAccount = foundation.storage.storageAccount;
    this.share = foundation.storage.share;
    this.managedRedis = foundation.redis?.managedRedis;
    this.redisCache = foundation.redis?.cache;

    if (props.containerAppEnvironmentId !== undefined) {
      this.containerAppEnvironmentId = props.containerAppEnvironmentId;
    } else {
      let workspaceId = props.logAnalyticsWorkspaceId;
      if (workspaceId === undefined) {
        this.logAnalyticsWorkspace = new LogAnalyticsWorkspace(this, 'Logs', {
          name: `${this.name}-logs`,
          resourceGroupName: this.resourceGroupName,
          location: this.location,
          sku: 'PerGB2018',
          retentionInDays: 30,
          tags: props.tags,
        });
        workspaceId = this.logAnalyticsWorkspace.id;
      }
      this.environment = new ContainerAppEnvironment(this, 'Environment', {
        name: `${this.name}-env`,
        resourceGroupName: this.resourceGroupName,
        location: this.location,
        logsDestination: 'log-analytics',
        logAnalyticsWorkspaceId: workspaceId,
        infrastructureSubnetId: props.infrastructureSubnetId,
        tags: props.tags,
      });
      this.containerAppEnvironmentId = this.environment.id;
    }
    this.environmentStorage = new ContainerAppEnvironmentStorage(this, 'SessionStateStorage', {
      name: this.name,
      containerAppEnvironmentId: this.containerAppEnvironmentId,
      accountName: foundation.storage.accountName,
      accessKey: foundation.storage.accessKey,
      shareName: foundation.storage.shareName,
      accessMode: 'ReadWrite',
    });

    const agentSecrets = agentSecretEnvs(props, foundation.redisUrl);
    const secretSources: SecretEnv[] = [...agentSecrets];
    if (props.principals !== undefined)
      secretSources.push({
        env: '',
        secretName: PRINCIPALS_SECRET,
        value: secretValue(props.principals),
        source: props.principals,
      });
    if (props.registryPassword !== undefined)
      secretSources.push({
        env: '',
        secretName: REGISTRY_SECRET,
        value: secretValue(props.registryPassword),
        source: props.registryPassword,
      });
    secretSources.push(...appSecrets);

    const byReference = props.keyVaultReferences ?? true;
    const vaultSecrets = byReference ? secretSources.map((s) => keyVaultSecretOf(s.source)) : [];
    const keyVaultIds = [
      ...new Set(vaultSecrets.flatMap((ds) => (ds === undefined ? [] : [ds.keyVaultIdInput ?? ds.keyVaultId]))),
    ];
    if (props.containerRegistryId !== undefined || keyVaultIds.length > 0) {
      this.identity = new AzureFleetIdentity(this, 'Identity', {
        name: this.name,
        resourceGroupName: this.resourceGroupName,
        location: this.location,
        containerRegistryId: props.containerRegistryId,
        keyVaultIds,
        tags: props.tags,
      });
    }
    const identityId = this.identity?.identity.id;
    const secrets: ContainerAppSecret[] = [
      { name: POLICY_SECRET, value: this.policyFile },
      ...secretSources.map((s, index): ContainerAppSecret => {
        const vaultSecret = vaultSecrets[index];
        return vaultSecret !== undefined && identityId !== undefined
          ? { name: s.secretName, keyVaultSecretId: vaultSecret.versionlessId, identity: identityId }
          : { name: s.secretName, value: s.value };
      }),
    ];

    const appEnv: ContainerAppTemplateContainerEnv[] = [
      ...Object.entries(this.app.env).map(([name, value]) => ({ name, value })),
      ...appSecrets.map((s) => ({ name: s.env, secretName: s.secretName })),
    ];
    // The two containers' scripts meet on this replica-local volume.
    const runMounts = wrapper.wrap ? [{ name: RUN_VOLUME, path: RUN_DIR }] : [];
    // In front of the Copilot CLI the share is the agent's alone; the app gets a replica-local
    // directory into which the agent stages the sessions it serves (ADR 0019).
    const staged = stagesSessionState(this.policy, true);
    const app: ContainerAppTemplateContainer = {
      name: APP_CONTAINER_NAME,
      image: this.app.image,
      cpu: this.app.cpu,
      memory: `${settings.appMemoryGiB}Gi`,
      // The wrapper starts the whole command line itself; without it the args stay apart.
      command:
        wrapper.wrap && settings.appCommandLine !== undefined
          ? wrapAppCommand(this.policy, settings.appCommandLine)
          : this.app.command && [...this.app.command],
      args: wrapper.wrap || this.app.args === undefined ? undefined : [...this.app.args],
      env: appEnv.length > 0 ? appEnv : undefined,
      volumeMounts: [
        { name: staged ? APP_STATE_VOLUME : SESSION_STATE_VOLUME, path: this.sessionStatePath },
        ...runMounts,
      ],
      // The agent's /healthz fails when the app stops answering; probing it from the app container
      // restarts the app, not only the agent (replicas share one network, so 9090 is reachable).
      livenessProbe: [
        {
          transport: 'HTTP',
          port: AGENT_ADMIN_PORT,
          path: AGENT_HEALTH_PATH,
          initialDelay: 30,
          intervalSeconds: 10,
          failureCountThreshold: 3,
          timeout: 5,
        },
      ],
    };
    const args = this.agentCommandArgs(props, this.policy).map((arg) => SECRET_FILE_PATHS[arg] ?? arg);
    const agent: ContainerAppTemplateContainer = {
      name: AGENT_CONTAINER_NAME,
      image: this.agent.image,
      cpu: this.agent.cpu,
      memory: `${settings.agentMemoryGiB}Gi`,
      command: wrapper.wrap ? wrapAgentCommand([AGENT_EXECUTABLE, ...args]) : [AGENT_EXECUTABLE, ...args],
      env: [
        // Container Apps starts no new revision when only a secret changes, so running replicas
        // would keep an old policy; a digest in the template makes a policy change roll them.
        { name: POLICY_DIGEST_ENV, value: createHash('sha256').update(this.policyFile).digest('hex') },
        ...agentSecrets.map((s) => ({ name: s.env, secretName: s.secretName })),
        ...(props.agent?.logLevel !== undefined ? [{ name: AGENT_ENV.logLevel, value: this.agent.logLevel }] : []),
      ],
      volumeMounts: [
        { name: SECRETS_VOLUME, path: POLICY_MOUNT_PATH },
        ...(staged
          ? [
              { name: SESSION_STATE_VOLUME, path: AGENT_SHARED_STATE_PATH },
              { name: APP_STATE_VOLUME, path: AGENT_APP_STATE_PATH },
            ]
          : []),
        ...runMounts,
      ],
      livenessProbe: [
        {
          transport: 'HTTP',
          port: AGENT_ADMIN_PORT,
          path: AGENT_HEALTH_PATH,
          initialDelay: 10,
          intervalSeconds: 10,
          failureCountThreshold: 3,
          timeout: 5,
        },
      ],
      readinessProbe: [
        {
          transport: 'HTTP',
          port: AGENT_ADMIN_PORT,
          path: AGENT_SERVING_PATH,
          intervalSeconds: 5,
          failureCountThreshold: 3,
          successCountThreshold: 1,
          timeout: 5,
        },
      ],
    };

    // With the fleet's own Redis, scale on sessions: KEDA's Redis scaler reads the scale list the
    // agents keep at one entry per session (plus reservations and waiters), aiming at
    // sessionsPerInstance entries per replica, so replicas holding idle sessions are not scaled in.
    // With an existing Redis (`redisUrl`, a secret the construct cannot take apart) it falls back to
    // open requests (TCP: connections) per replica: an MCP session keeps a stream open, a Copilot
    // client keeps one connection.
    const redis = foundation.redis;
    this.scaleOn = redis !== undefined ? 'sessions' : 'requests';
    if (redis !== undefined) secrets.push({ name: SCALE_REDIS_SECRET, value: redis.accessKey });
    const sessionRule: ContainerAppTemplateCustomScaleRule[] | undefined =
      redis === undefined
        ? undefined
        : [
            {
              name: 'sessions',
              customRuleType: 'redis',
              metadata: {
                address: redis.address,
                listName: `${fleetKeyPrefix(this.settings.fleetName)}${FLEET_SCALE_LIST_SUFFIX}`,
                listLength: numberText(this.policy.sessionsPerInstance),
                enableTLS: 'true',
              },
              authentication: [{ secretName: SCALE_REDIS_SECRET, triggerParameter: 'password' }],
            },
          ];
    const scaleRule =
      sessionRule === undefined
        ? [{ name: 'sessions-per-replica', concurrentRequests: numberText(this.policy.sessionsPerInstance) }]
        : undefined;
    this.containerApp = new ContainerApp(this, 'App', {
      name: this.name,
      resourceGroupName: this.resourceGroupName,
      containerAppEnvironmentId: this.containerAppEnvironmentId,
      revisionMode: 'Single',
      secret: secrets,
      identity: identityId !== undefined ? { type: 'UserAssigned', identityIds: [identityId] } : undefined,
      registry:
        props.registryServer === undefined
          ? undefined
          : props.containerRegistryId !== undefined
            ? [{ server: props.registryServer, identity: identityId }]
            : [{ server: props.registryServer, username: props.registryUsername, passwordSecretName: REGISTRY_SECRET }],
      // The first revision pulls the image and reads the secrets with the identity's roles.
      dependsOn: this.identity?.roleAssignments.length ? [...this.identity.roleAssignments] : undefined,
      ingress: {
        externalEnabled: this.externalIngress,
        targetPort: AGENT_CLIENT_PORT,
        exposedPort: tcp ? AGENT_CLIENT_PORT : undefined,
        transport: tcp ? 'tcp' : 'auto',
        allowInsecureConnections: false,
        // With any Allow rule Container Apps refuses every other source: only the proxy can name a principal.
        ipSecurityRestriction: props.trustedProxies?.cidrs?.map((cidr, index) => ({
          name: `trusted-proxy-${index}`,
          action: 'Allow',
          ipAddressRange: cidr,
          description: 'may send the principal header',
        })),
        trafficWeight: [{ latestRevision: true, percentage: 100 }],
      },
      template: {
        minReplicas: this.minReplicas,
        maxReplicas: this.maxReplicas,
        terminationGracePeriodSeconds: terminationGracePeriodSeconds(this.policy),
        customScaleRule: sessionRule,
        httpScaleRule: tcp ? undefined : scaleRule,
        tcpScaleRule: tcp ? scaleRule : undefined,
        volume: [
          { name: SESSION_STATE_VOLUME, storageType: 'AzureFile', storageName: this.environmentStorage.name },
          { name: SECRETS_VOLUME, storageType: 'Secret' },
          ...(stagesSessionState(this.policy, true) ? [{ name: APP_STATE_VOLUME, storageType: 'EmptyDir' }] : []),
          ...(wrapper.wrap ? [{ name: RUN_VOLUME, storageType: 'EmptyDir' }] : []),
        ],
        container: [app, agent],
      },
      tags: props.tags,
    });
    const fqdn = this.containerApp.ingress.fqdn;
    this.address = tcp ? `tcp://${fqdn}:${AGENT_CLIENT_PORT}` : `https://${fqdn}`;
    this.addressOutput = new TerraformOutput(this, 'Address', {
      value: this.address,
      description: `Where clients reach the fleet ${this.name}.`,
    });
  }
}

/** The agent's file arguments, moved to where the secret volume puts the files. */
const SECRET_FILE_PATHS: Record<string, string> = {
  [`${POLICY_MOUNT_PATH}/${POLICY_FILE_NAME}`]: `${POLICY_MOUNT_PATH}/${POLICY_SECRET}`,
  [`${PRINCIPALS_MOUNT_PATH}/${PRINCIPALS_FILE_NAME}`]: `${POLICY_MOUNT_PATH}/${PRINCIPALS_SECRET}`,
};

function numberText(value: number): string {
  return Token.isUnresolved(value) ? Token.asString(value) : String(value);
}

/**
 * The consumption plan's rule: each container's vCPUs in steps of 0.25 and memory in steps of
 * 0.5 GiB, the replica's memory 2 GiB per vCPU, at most 4 vCPUs.
 * https://learn.microsoft.com/azure/container-apps/containers#allocations
 */
function checkReplicaResources(fleet: AzureContainerAppsSessionFleet, memoryGiven: boolean): string[] {
  const problems: string[] = [];
  const values = {
    'app.cpu': fleet.app.cpu,
    'app.memoryMiB': fleet.app.memoryMiB,
    'agent.cpu': fleet.agent.cpu,
    'agent.memoryMiB': fleet.agent.memoryMiB,
  };
  if (Object.values(values).some((v) => Token.isUnresolved(v) || !Number.isFinite(v) || v <= 0)) return problems;
  for (const prop of ['app.cpu', 'agent.cpu'] as const) {
    if (!isMultipleOf(values[prop], 0.25))
      problems.push(`'${prop}' (${describeValue(values[prop])}) must be a multiple of 0.25 on Azure Container Apps`);
  }
  // A memory derived from app.cpu (2048 MiB per vCPU) is on a step whenever app.cpu is.
  let notWhole = false;
  for (const prop of memoryGiven ? (['app.memoryMiB', 'agent.memoryMiB'] as const) : (['agent.memoryMiB'] as const)) {
    // A memory that is no whole number of MiB is reported by its own check already.
    if (!Number.isInteger(values[prop])) notWhole = true;
    else if (!isMultipleOf(values[prop], MEMORY_STEP_MIB))
      problems.push(
        `'${prop}' (${describeValue(values[prop])}) must be a multiple of ${MEMORY_STEP_MIB} (0.5 GiB) on Azure Container Apps`,
      );
  }
  if (problems.length > 0 || notWhole) return problems;
  const cpu = values['app.cpu'] + values['agent.cpu'];
  const memory = values['app.memoryMiB'] + values['agent.memoryMiB'];
  if (cpu > MAX_REPLICA_CPU) {
    problems.push(
      `'app.cpu' + 'agent.cpu' (${cpu}) must be at most ${MAX_REPLICA_CPU} vCPUs per replica on Azure Container Apps`,
    );
  } else if (memory !== cpu * MIB_PER_CPU) {
    problems.push(
      `'app.memoryMiB' + 'agent.memoryMiB' (${memory}) must be ${MIB_PER_CPU} MiB per vCPU of 'app.cpu' + 'agent.cpu' (${cpu}) on Azure Container Apps: ${cpu * MIB_PER_CPU}`,
    );
  }
  return problems;
}

function isMultipleOf(value: number, step: number): boolean {
  return Math.abs(value / step - Math.round(value / step)) < 1e-9;
}

function checkEnvironmentProps(props: AzureContainerAppsSessionFleetProps, external: boolean, tcp: boolean): string[] {
  const problems: string[] = [];
  if (props.containerAppEnvironmentId !== undefined) {
    for (const prop of ['logAnalyticsWorkspaceId', 'infrastructureSubnetId'] as const) {
      if (props[prop] !== undefined)
        problems.push(`'${prop}' cannot be combined with 'containerAppEnvironmentId': it configures a new environment`);
    }
  } else if (props.privateEndpoints !== undefined && props.infrastructureSubnetId === undefined) {
    problems.push(
      `'privateEndpoints' needs 'infrastructureSubnetId' (or an existing VNet environment in 'containerAppEnvironmentId'): replicas outside the virtual network could not reach the private Redis and storage`,
    );
  }
  if (props.containerAppEnvironmentId === undefined && tcp && external && props.infrastructureSubnetId === undefined) {
    problems.push(
      `'infrastructureSubnetId' is required for affinity "copilot-jsonrpc" with external ingress: Azure Container Apps offers external TCP ingress only in an environment with its own virtual network (or set 'externalIngress' to false)`,
    );
  }
  return problems;
}

function checkGracePeriod(policy: Policy): string[] {
  if (Token.isUnresolved(policy.drainTimeoutSeconds)) return [];
  const grace = terminationGracePeriodSeconds(policy);
  return grace > MAX_GRACE_SECONDS
    ? [
        `'policy.drainTimeoutSeconds' (${policy.drainTimeoutSeconds}) needs a termination grace period of ${grace} s; Azure Container Apps allows at most ${MAX_GRACE_SECONDS} s, so drainTimeoutSeconds must be at most ${MAX_GRACE_SECONDS - (grace - policy.drainTimeoutSeconds)}`,
      ]
    : [];
}

function checkSecretNames(names: readonly string[]): string[] {
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const name of names) {
    if (seen.has(name))
      problems.push(
        `'app.secretEnv' has two variables that map to the container app secret ${describeValue(name)}: rename one`,
      );
    seen.add(name);
  }
  return problems;
}
