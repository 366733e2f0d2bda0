/**
 * What the two Azure fleets (Container Instances and Container Apps) have in common: their shared
 * props with defaults, the checks of those props, the policy (validated by the shared model), and
 * the resources both create before their compute: resource group, session-state share, Redis.
 */
import { DataAzurermResourceGroup } from '@cdktf/provider-azurerm/lib/data-azurerm-resource-group/index.js';
import { ResourceGroup } from '@cdktf/provider-azurerm/lib/resource-group/index.js';
import { Op, Token } from 'cdktf';
import { Construct } from 'constructs';
import { AGENT_ADMIN_PORT, AGENT_CLIENT_PORT, DEFAULT_SESSION_STATE_PATH } from '../policy/agent-interface.js';
import { describeValue } from '../policy/format.js';
import type { Policy, PolicyInput } from '../policy/index.js';
import {
  AGENT_APP_STATE_PATH,
  AGENT_SHARED_STATE_PATH,
  agentArgs,
  DEFAULT_AGENT_IMAGE,
  FLEET_NAME_PATTERN,
  FLEET_NAME_RULE,
  fleetNameFromPath,
  stagesSessionState,
} from './agent-container.js';
import { warnAboutAgentImage } from './agent-image.js';
import type { AzureAppContainer, AzureSessionFleetBaseProps } from './azure-fleet-props.js';
import {
  AzureFleetRedis,
  DEFAULT_MANAGED_REDIS_SKU,
  isRedisCacheSku,
  MANAGED_REDIS_SKU,
  REDIS_CAPACITY,
  REDIS_SKUS,
  type RedisCacheSku,
  type RedisSku,
} from './azure-fleet-redis.js';
import {
  checkRedisCacheName,
  checkResourceName,
  checkShareName,
  checkStorageAccountName,
  defaultFleetName,
  defaultRedisCacheName,
  defaultStorageAccountName,
} from './azure-naming.js';
import { AzureFleetPrivateEndpoints } from './azure-private-endpoints.js';
import { type AzureSecretSource, checkSecretSource, secretValue } from './azure-secrets.js';
import { AzureSessionStateStorage } from './azure-session-state-storage.js';
import { fleetJwtProblems } from './fleet-jwt.js';
import { resolveFleetPolicy, SessionFleetValidationError } from './fleet-policy.js';
import { identityHeaderProblems } from './identity-headers.js';

/** The container names inside every instance. */
export const APP_CONTAINER_NAME = 'app';
export const AGENT_CONTAINER_NAME = 'sessionfleet-agent';

export type { AzureAgentContainer, AzureAppContainer, AzureSessionFleetBaseProps } from './azure-fleet-props.js';

/** The app container with its defaults resolved. */
export interface ResolvedAzureAppContainer {
  readonly image: string;
  readonly port: number;
  readonly command?: readonly string[];
  readonly args?: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly secretEnv: Readonly<Record<string, AzureSecretSource>>;
  readonly healthPath?: string;
  readonly cpu: number;
  readonly memoryMiB: number;
}

/** The agent container with its defaults resolved. */
export interface ResolvedAzureAgentContainer {
  readonly image: string;
  readonly cpu: number;
  readonly memoryMiB: number;
  readonly logLevel: string;
}

/**
 * What both Azure fleets expose of their shared props, defaults resolved once (`settings`), so
 * users can read them after construction.
 */
export abstract class AzureSessionFleetBase extends Construct {
  public readonly name: string;
  /** The app container, defaults resolved. */
  public readonly app: ResolvedAzureAppContainer;
  /** The agent container, defaults resolved. */
  public readonly agent: ResolvedAzureAgentContainer;
  public readonly storageAccountName: string;
  public readonly shareName: string;
  public readonly shareQuotaGiB: number;
  public readonly sessionStatePath: string;
  public readonly redisSkuName: RedisSku;
  public readonly redisCapacity: number;
  public readonly redisCacheName: string;
  /** The agents' `--fleet`: the Redis key prefix that keeps this fleet apart from others sharing the Redis. */
  public readonly fleetName: string;

  /** The same values, for the subclass's own use. */
  protected readonly settings: AzureFleetSettings;

  constructor(scope: Construct, id: string, props: AzureSessionFleetBaseProps) {
    super(scope, id);
    const settings = resolveAzureFleetSettings(this, props);
    this.settings = settings;
    this.name = settings.name;
    this.fleetName = settings.fleetName;
    this.app = settings.app;
    this.agent = settings.agent;
    this.storageAccountName = settings.storageAccountName;
    this.shareName = settings.shareName;
    this.shareQuotaGiB = settings.shareQuotaGiB;
    this.sessionStatePath = settings.sessionStatePath;
    this.redisSkuName = settings.redisSkuName;
    this.redisCapacity = settings.redisCapacity;
    this.redisCacheName = settings.redisCacheName;
    warnAboutAgentImage(this, this.agent.image);
  }

  /** The agent's command-line flags, the same in both Azure fleets (secret paths are the caller's). */
  protected agentCommandArgs(props: AzureSessionFleetBaseProps, policy: Policy): string[] {
    return agentArgs({
      policy,
      appPort: this.app.port,
      principals: props.principals !== undefined,
      principalHeader: props.principalHeader,
      tenantHeader: props.tenantHeader,
      jwt: props.jwt,
      appHealthPath: this.app.healthPath,
      fleetName: this.settings.fleetName,
      ...(stagesSessionState(policy, true)
        ? { sessionStateDir: AGENT_SHARED_STATE_PATH, appStateDir: AGENT_APP_STATE_PATH }
        : {}),
    });
  }
}

/** The props with their defaults resolved; copied into each fleet's public fields. */
export interface AzureFleetSettings {
  readonly name: string;
  /** The agents' `--fleet`. */
  readonly fleetName: string;
  readonly app: ResolvedAzureAppContainer;
  readonly agent: ResolvedAzureAgentContainer;
  /** `app.memoryMiB` in GiB, as the provider takes it. */
  readonly appMemoryGiB: number;
  /** `agent.memoryMiB` in GiB, as the provider takes it. */
  readonly agentMemoryGiB: number;
  /** `app.command` and `app.args` as one command line (Container Instances has no separate args). */
  readonly appCommandLine?: string[];
  readonly storageAccountName: string;
  readonly shareName: string;
  readonly shareQuotaGiB: number;
  readonly sessionStatePath: string;
  readonly redisSkuName: RedisSku;
  readonly redisCapacity: number;
  readonly redisCacheName: string;
}

export const AZURE_FLEET_DEFAULTS = {
  appCpu: 1,
  /** Per vCPU of `app.cpu` when `app.memoryMiB` is not given. */
  appMemoryMiBPerCpu: 2048,
  agentCpu: 0.5,
  agentMemoryMiB: 1024,
  agentLogLevel: 'info',
  shareName: 'session-state',
  shareQuotaGiB: 100,
  redisSkuName: DEFAULT_MANAGED_REDIS_SKU,
  redisCapacity: 1,
} as const;

export const SHARE_QUOTA_GIB = { min: 1, max: 5120 } as const;

export function resolveAzureFleetSettings(scope: Construct, props: AzureSessionFleetBaseProps): AzureFleetSettings {
  // Checked by checkAzureFleetProps; a JavaScript caller may still leave it out.
  const given: Partial<AzureAppContainer> = props.app ?? {};
  const cpu = given.cpu ?? AZURE_FLEET_DEFAULTS.appCpu;
  const app: ResolvedAzureAppContainer = {
    image: given.image as string,
    port: given.port as number,
    ...(given.command !== undefined ? { command: given.command } : {}),
    ...(given.args !== undefined ? { args: given.args } : {}),
    env: given.env ?? {},
    secretEnv: given.secretEnv ?? {},
    ...(given.healthPath !== undefined ? { healthPath: given.healthPath } : {}),
    cpu,
    memoryMiB: given.memoryMiB ?? times(cpu, AZURE_FLEET_DEFAULTS.appMemoryMiBPerCpu),
  };
  const agentMemoryMiB = props.agent?.memoryMiB ?? AZURE_FLEET_DEFAULTS.agentMemoryMiB;
  const agent: ResolvedAzureAgentContainer = {
    image: props.agent?.image ?? DEFAULT_AGENT_IMAGE,
    cpu: props.agent?.cpu ?? AZURE_FLEET_DEFAULTS.agentCpu,
    memoryMiB: agentMemoryMiB,
    logLevel: props.agent?.logLevel ?? AZURE_FLEET_DEFAULTS.agentLogLevel,
  };
  return {
    name: props.name ?? defaultFleetName(scope),
    fleetName: props.fleetName ?? fleetNameFromPath(scope),
    app,
    agent,
    // A memory derived from cpu is computed in GiB directly (cpu × 2), so no rounding creeps in.
    appMemoryGiB: given.memoryMiB !== undefined ? gibibytes(given.memoryMiB) : times(cpu, 2),
    agentMemoryGiB: gibibytes(agentMemoryMiB),
    ...(given.command !== undefined ? { appCommandLine: [...given.command, ...(given.args ?? [])] } : {}),
    storageAccountName: props.storageAccountName ?? defaultStorageAccountName(scope),
    shareName: props.shareName ?? AZURE_FLEET_DEFAULTS.shareName,
    shareQuotaGiB: props.shareQuotaGiB ?? AZURE_FLEET_DEFAULTS.shareQuotaGiB,
    sessionStatePath: props.sessionStatePath ?? DEFAULT_SESSION_STATE_PATH,
    redisSkuName: props.redisSkuName ?? AZURE_FLEET_DEFAULTS.redisSkuName,
    redisCapacity: props.redisCapacity ?? AZURE_FLEET_DEFAULTS.redisCapacity,
    redisCacheName: props.redisCacheName ?? defaultRedisCacheName(scope),
  };
}

/** MiB to the GiB the azurerm provider takes (Terraform divides when the value is a token). */
export function gibibytes(mib: number): number {
  return Token.isUnresolved(mib) ? Token.asNumber(Op.div(mib, 1024)) : mib / 1024;
}

function times(value: number, factor: number): number {
  return Token.isUnresolved(value) ? Token.asNumber(Op.mul(value, factor)) : value * factor;
}

/** The flat props of 0.x and their names since docs/adr/0100. */
const RENAMED_PROPS: Readonly<Record<string, string>> = {
  image: "'app.image'",
  appPort: "'app.port'",
  command: "'app.command'",
  environment: "'app.env'",
  secretEnvironment: "'app.secretEnv'",
  appHealthPath: "'app.healthPath'",
  cpuCores: "'app.cpu'",
  memoryGiB: "'app.memoryMiB' (whole MiB: GiB × 1024)",
  agentImage: "'agent.image'",
  agentCpuCores: "'agent.cpu'",
  agentMemoryGiB: "'agent.memoryMiB' (whole MiB: GiB × 1024)",
};

const LOG_LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function known(value: unknown): boolean {
  return value !== undefined && !Token.isUnresolved(value);
}

/** `'prop' (value) must be ...` for a number that must lie above 0. */
function checkPositive(prop: string, value: number, what: string): string | undefined {
  if (!known(value)) return undefined;
  return Number.isFinite(value) && value > 0
    ? undefined
    : `'${prop}' (${describeValue(value)}) must be ${what} above 0`;
}

/** `'prop' (value) must be ...` for a memory that must be a whole number of MiB above 0. */
function checkMiB(prop: string, value: number): string | undefined {
  if (!known(value)) return undefined;
  return Number.isInteger(value) && value > 0
    ? undefined
    : `'${prop}' (${describeValue(value)}) must be a whole number of MiB above 0`;
}

/**
 * Every problem with the shared props, in prop order. `nameMaxLength` is the longest base name
 * the platform's derived names allow.
 */
export function checkAzureFleetProps(
  props: AzureSessionFleetBaseProps,
  settings: AzureFleetSettings,
  nameMaxLength: number,
): string[] {
  const problems: (string | undefined)[] = [];
  problems.push(checkResourceName('name', settings.name, nameMaxLength));
  if (known(settings.fleetName) && !FLEET_NAME_PATTERN.test(settings.fleetName)) {
    problems.push(`'fleetName' (${describeValue(settings.fleetName)}) ${FLEET_NAME_RULE}`);
  }
  if (props.resourceGroupName === undefined && props.location === undefined) {
    problems.push(`'location' is required when no 'resourceGroupName' is given (a new resource group is created)`);
  }
  const { app, agent } = settings;
  // Renamed props are refused, never read: a JavaScript caller (no type check) learns the new name.
  for (const [old, now] of Object.entries(RENAMED_PROPS)) {
    if (old in props) problems.push(`'${old}' is no longer a prop: use ${now} (docs/adr/0100-construct-vocabulary.md)`);
  }
  if (props.app === undefined) {
    problems.push(`'app' is required: the app container ({ image, port, ... })`);
  } else {
    if (app.image === undefined) problems.push(`'app.image' is required`);
    if (app.port === undefined) problems.push(`'app.port' is required`);
  }
  if (known(app.image) && app.image.trim() === '') {
    problems.push(`'app.image' (${describeValue(app.image)}) must not be empty`);
  }
  if (known(app.port)) {
    const port = app.port;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      problems.push(`'app.port' (${describeValue(port)}) must be a whole number between 1 and 65535`);
    } else if (port === AGENT_CLIENT_PORT || port === AGENT_ADMIN_PORT) {
      problems.push(
        `'app.port' (${port}) must not be ${AGENT_CLIENT_PORT} or ${AGENT_ADMIN_PORT}: the agent listens on those ports in the same instance`,
      );
    }
  }
  problems.push(checkPositive('app.cpu', app.cpu, 'a number of vCPUs'));
  // A derived memory is only wrong when app.cpu is, which is reported already.
  if (props.app?.memoryMiB !== undefined) problems.push(checkMiB('app.memoryMiB', props.app.memoryMiB));
  if (known(agent.image) && agent.image.trim() === '') {
    problems.push(`'agent.image' (${describeValue(agent.image)}) must not be empty`);
  }
  problems.push(checkPositive('agent.cpu', agent.cpu, 'a number of vCPUs'));
  problems.push(checkMiB('agent.memoryMiB', agent.memoryMiB));
  if (known(agent.logLevel) && !LOG_LEVELS.includes(agent.logLevel)) {
    problems.push(`'agent.logLevel' (${describeValue(agent.logLevel)}) must be one of ${LOG_LEVELS.join(', ')}`);
  }
  if (known(app.healthPath) && !app.healthPath!.startsWith('/')) {
    problems.push(`'app.healthPath' (${describeValue(app.healthPath)}) must start with /`);
  }
  problems.push(...identityHeaderProblems(props));
  problems.push(...fleetJwtProblems(props));
  problems.push(checkSecretSource('principals', props.principals));
  problems.push(checkSecretSource('upstreamToken', props.upstreamToken));
  problems.push(checkSecretSource('adminToken', props.adminToken));

  if (props.redisUrl !== undefined) {
    problems.push(checkSecretSource('redisUrl', props.redisUrl));
    for (const prop of ['redisSkuName', 'redisCapacity', 'redisCacheName'] as const) {
      if (props[prop] !== undefined)
        problems.push(
          `'${prop}' cannot be combined with 'redisUrl': no Redis is created when an existing one is given`,
        );
    }
  } else {
    const sku = settings.redisSkuName;
    if (known(sku) && !isRedisCacheSku(sku)) {
      if (!MANAGED_REDIS_SKU.test(sku)) {
        problems.push(
          `'redisSkuName' (${describeValue(sku)}) must be an Azure Managed Redis SKU (Balanced_B<n>, MemoryOptimized_M<n>, ComputeOptimized_X<n>, FlashOptimized_A<n>, e.g. "${DEFAULT_MANAGED_REDIS_SKU}") or one of ${REDIS_SKUS.map((s) => JSON.stringify(s)).join(', ')}`,
        );
      } else if (props.redisCapacity !== undefined) {
        problems.push(
          `'redisCapacity' only applies to the Azure Cache for Redis SKUs ("Basic", "Standard", "Premium"): an Azure Managed Redis (${describeValue(sku)}) is sized by its SKU`,
        );
      }
    } else if (known(sku) && known(settings.redisCapacity)) {
      const { min, max } = REDIS_CAPACITY[sku as RedisCacheSku];
      const capacity = settings.redisCapacity;
      if (!Number.isInteger(capacity) || capacity < min || capacity > max) {
        problems.push(
          `'redisCapacity' (${describeValue(capacity)}) must be a whole number between ${min} and ${max} for the ${sku} SKU`,
        );
      }
    }
    problems.push(checkRedisCacheName('redisCacheName', settings.redisCacheName));
  }

  problems.push(checkStorageAccountName('storageAccountName', settings.storageAccountName));
  problems.push(checkShareName('shareName', settings.shareName));
  const quota = settings.shareQuotaGiB;
  if (known(quota) && (!Number.isInteger(quota) || quota < SHARE_QUOTA_GIB.min || quota > SHARE_QUOTA_GIB.max)) {
    problems.push(
      `'shareQuotaGiB' (${describeValue(quota)}) must be a whole number between ${SHARE_QUOTA_GIB.min} and ${SHARE_QUOTA_GIB.max}`,
    );
  }
  if (known(settings.sessionStatePath) && !settings.sessionStatePath.startsWith('/')) {
    problems.push(`'sessionStatePath' (${describeValue(settings.sessionStatePath)}) must be an absolute path`);
  }

  const plain = Object.keys(app.env);
  const secret = Object.keys(app.secretEnv);
  for (const [prop, names] of [
    ['app.env', plain],
    ['app.secretEnv', secret],
  ] as const) {
    for (const name of names.filter((n) => !ENV_NAME.test(n))) {
      problems.push(
        `'${prop}' has the variable name ${describeValue(name)}: names must be letters, digits and underscores, not starting with a digit`,
      );
    }
  }
  for (const name of secret.filter((n) => plain.includes(n))) {
    problems.push(`environment variable ${describeValue(name)} is set in both 'app.env' and 'app.secretEnv'`);
  }
  for (const [name, source] of Object.entries(app.secretEnv)) {
    problems.push(checkSecretSource(`app.secretEnv.${name}`, source));
  }

  if (props.containerRegistryId !== undefined) {
    if (props.registryServer === undefined) {
      problems.push(
        `'containerRegistryId' needs 'registryServer' (the registry's login server, e.g. myregistry.azurecr.io)`,
      );
    }
    if (props.registryUsername !== undefined || props.registryPassword !== undefined) {
      problems.push(
        `'registryUsername' and 'registryPassword' cannot be combined with 'containerRegistryId': the image is pulled with the fleet's managed identity`,
      );
    }
  } else {
    const registry = [props.registryServer, props.registryUsername, props.registryPassword];
    if (registry.some((v) => v !== undefined) && registry.some((v) => v === undefined)) {
      problems.push(
        `'registryServer', 'registryUsername' and 'registryPassword' must be given together (or 'registryServer' with 'containerRegistryId')`,
      );
    }
  }
  problems.push(checkSecretSource('registryPassword', props.registryPassword));
  return problems.filter((p): p is string => p !== undefined);
}

/**
 * The policy through the shared model, with `instanceVcpu` from `app.cpu`. A fleet on Azure
 * mounts one share in every instance, so `sharedSessionState` defaults to true here (an explicit
 * value in the policy wins). Problems are returned, not thrown, so the fleet reports them together
 * with its own.
 */
export function resolveAzurePolicy(
  scope: Construct,
  input: PolicyInput,
  cpu: number,
): { policy?: Policy; warnings: readonly string[]; problems: readonly string[] } {
  try {
    const cpuKnownAndValid = !known(cpu) || (Number.isFinite(cpu) && cpu > 0);
    const { policy, warnings } = resolveFleetPolicy(
      scope,
      { sharedSessionState: true, ...input },
      // A bad app.cpu is reported once, by its own check, not again by the policy model.
      cpuKnownAndValid ? { instanceCpu: cpu } : {},
    );
    if (policy.isolation === 'tenant') {
      // The agent refuses to start under tenant isolation without the tenant it serves.
      return {
        warnings,
        problems: [
          `'policy.isolation' ("tenant") is not available on Azure: under tenant isolation every agent must be told the one tenant its instance serves (--tenant), which the Azure fleets do not do; use KubernetesSessionFleet's tenants, or another isolation mode`,
        ],
      };
    }
    return { policy, warnings, problems: [] };
  } catch (error) {
    if (error instanceof SessionFleetValidationError) return { warnings: [], problems: error.problems };
    throw error;
  }
}

/** What every Azure fleet stands on. */
export interface AzureFleetFoundation {
  /** Reference to the resource group's name (it orders creation after the group). */
  readonly resourceGroupName: string;
  readonly location: string;
  /** Set when the fleet created the group. */
  readonly resourceGroup?: ResourceGroup;
  readonly storage: AzureSessionStateStorage;
  /** Set when the fleet created the Redis. */
  readonly redis?: AzureFleetRedis;
  /** Reference to the Redis URL the agents get as a secret. */
  readonly redisUrl: string;
  /** Set with `privateEndpoints`. */
  readonly privateEndpoints?: AzureFleetPrivateEndpoints;
}

export function createAzureFleetFoundation(
  scope: Construct,
  props: AzureSessionFleetBaseProps,
  settings: AzureFleetSettings,
): AzureFleetFoundation {
  let resourceGroup: ResourceGroup | undefined;
  let resourceGroupName: string;
  let location: string;
  if (props.resourceGroupName !== undefined) {
    resourceGroupName = props.resourceGroupName;
    location =
      props.location ??
      new DataAzurermResourceGroup(scope, 'ExistingResourceGroup', { name: props.resourceGroupName }).location;
  } else {
    location = props.location!;
    resourceGroup = new ResourceGroup(scope, 'ResourceGroup', {
      name: `${settings.name}-rg`,
      location,
      tags: props.tags,
    });
    resourceGroupName = resourceGroup.name;
  }
  const storage = new AzureSessionStateStorage(scope, 'SessionState', {
    resourceGroupName,
    location,
    storageAccountName: settings.storageAccountName,
    shareName: settings.shareName,
    quotaGiB: settings.shareQuotaGiB,
    publicNetworkAccess: props.privateEndpoints === undefined || props.privateEndpoints.keepStoragePublic === true,
    tags: props.tags,
  });
  let redis: AzureFleetRedis | undefined;
  let redisUrl: string;
  if (props.redisUrl !== undefined) {
    redisUrl = secretValue(props.redisUrl);
  } else {
    redis = new AzureFleetRedis(scope, 'Redis', {
      resourceGroupName,
      location,
      name: settings.redisCacheName,
      skuName: settings.redisSkuName,
      capacity: settings.redisCapacity,
      publicNetworkAccess: props.privateEndpoints === undefined,
      tags: props.tags,
    });
    redisUrl = redis.url;
  }
  const privateEndpoints =
    props.privateEndpoints === undefined
      ? undefined
      : new AzureFleetPrivateEndpoints(scope, 'PrivateEndpoints', {
          ...props.privateEndpoints,
          resourceGroupName,
          location,
          namePrefix: settings.name,
          storageAccountId: storage.storageAccount.id,
          redis,
          tags: props.tags,
        });
  return { resourceGroupName, location, resourceGroup, storage, redis, redisUrl, privateEndpoints };
}
