/**
 * The props both Azure fleets take, apart from their shared base so that each file stays readable;
 * `azure-fleet-base.ts` re-exports them.
 */
import type { PolicyInput } from '../policy/index.js';
import type { RedisSku } from './azure-fleet-redis.js';
import type { AzurePrivateEndpointsOptions } from './azure-private-endpoints.js';
import type { AzureSecretSource } from './azure-secrets.js';
import type { AzureTrustedProxies } from './azure-trusted-proxies.js';
import type { FleetJwt } from './fleet-jwt.js';

/**
 * The app container of an Azure fleet: the session-holding server the agent fronts. The names,
 * types and units are those of `KubernetesAppContainer` (docs/adr/0100); Azure allocates `cpu`
 * and `memoryMiB` where Kubernetes has requests and limits.
 */
export interface AzureAppContainer {
  /** Image of the app, e.g. a Copilot CLI image or an MCP server. */
  readonly image: string;
  /**
   * Port the app listens on inside the instance. The agent reaches it over loopback (containers of
   * one instance share their network), so the app may listen on 127.0.0.1 only; 8080 and 9090
   * belong to the agent.
   */
  readonly port: number;
  /**
   * Entrypoint of the app container (it replaces the image's entrypoint and command). Needed by
   * the drain wrapper (`drainWrapper`), which starts the app itself.
   * @default - the image's own entrypoint and command
   */
  readonly command?: readonly string[];
  /**
   * Arguments of the app container, after `command`, e.g. `['--headless', '--port', '4321']` for
   * the Copilot CLI. On Container Instances a command line replaces the image's entrypoint and
   * command, so `args` needs `command` there.
   * @default - none
   */
  readonly args?: readonly string[];
  /**
   * Plain environment variables. Never put a secret here: use `secretEnv`.
   * @default - none
   */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Environment variables from secret references (e.g. `COPILOT_GITHUB_TOKEN`,
   * `COPILOT_CONNECTION_TOKEN`): see `AzureSecretSource`. The values never appear in the
   * synthesized configuration.
   * @default - none
   */
  readonly secretEnv?: Readonly<Record<string, AzureSecretSource>>;
  /**
   * HTTP path the agent probes on the app (`--health-path`).
   * @default - the agent probes with a TCP connect
   */
  readonly healthPath?: string;
  /**
   * vCPUs Azure allocates to the app container (e.g. `0.5`); also the fleet's `instanceVcpu`
   * (session and request isolation need 2).
   * @default 1
   */
  readonly cpu?: number;
  /**
   * Memory Azure allocates to the app container, in whole MiB (e.g. `1024`); converted to GiB for
   * the provider.
   * @default - 2048 MiB per vCPU of `cpu`
   */
  readonly memoryMiB?: number;
}

/** The sessionfleet agent sidecar of an Azure fleet (names as `KubernetesAgentContainer`'s). */
export interface AzureAgentContainer {
  /**
   * Agent image, built from `agent/Dockerfile`; `sessionfleet-agent` must be on its PATH.
   * @default 'ghcr.io/sessionfleet/agent:0.1.0' (`DEFAULT_AGENT_IMAGE`)
   */
  readonly image?: string;
  /**
   * vCPUs Azure allocates to the agent container.
   * @default 0.5
   */
  readonly cpu?: number;
  /**
   * Memory Azure allocates to the agent container, in whole MiB.
   * @default 1024
   */
  readonly memoryMiB?: number;
  /**
   * The agent's log level (`--log-level`).
   * @default 'info'
   */
  readonly logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

/** Props both Azure fleets take. */
export interface AzureSessionFleetBaseProps {
  /**
   * The fleet's policy (SPEC.md §8): isolation, affinity, quotas, lifecycle. Validated at synth time
   * with the same model the agent uses; `instanceVcpu` is filled in from `app.cpu` so the 2-vCPU
   * rule of session and request isolation is checked.
   *
   * On Azure Container Instances a change of the policy replaces every container group at once:
   * all sessions end and the fleet is down until the new groups are up (docs/adr/0101). Container
   * Apps rolls a new revision instead.
   */
  readonly policy: PolicyInput;

  /** The app container: the session-holding server (Copilot CLI, MCP server, HTTP service). */
  readonly app: AzureAppContainer;

  /**
   * The agent sidecar's image and resources.
   * @default - `DEFAULT_AGENT_IMAGE` with 0.5 vCPU and 1024 MiB
   */
  readonly agent?: AzureAgentContainer;

  /**
   * Wrap the app's and the agent's command lines in small `sh` scripts that give the two
   * containers one fate: on SIGTERM the app keeps running until the agent has drained (then it gets
   * the signal), and when the agent recycles after its session (`policy.recycleAfterSession`) the
   * app is stopped too, so the platform restarts both and the next session meets a new app
   * process. Needs `/bin/sh` and `sleep` in the app's image, and `app.command` (the wrapper starts the
   * app itself; an image's own entrypoint is not known at synth time). Without it, the app receives
   * SIGTERM together with the agent, and `policy.recycleAfterSession` is refused.
   * @see docs/adr/0101-azure-recycling-drain-and-network.md
   * @default - true when `app.command` is given
   */
  readonly drainWrapper?: boolean;

  /**
   * HTTP fronts: a trusted header, set by an authenticating proxy in front, that names the principal.
   * @default - principals come from `principals` tokens, or none
   */
  readonly principalHeader?: string;

  /**
   * Who may send `principalHeader`: required with it (docs/adr/0100). `AzureTrustedProxies.from({ cidrs })`
   * admits only those ranges (Container Apps ingress IP restrictions); `AzureTrustedProxies.anySource(reason)`
   * acknowledges that whoever reaches the client port may name any principal.
   * @default - none; an error when `principalHeader` is set
   */
  readonly trustedProxies?: AzureTrustedProxies;

  /**
   * HTTP fronts: a trusted header, set by an authenticating proxy in front, that names the
   * principal's tenant (`--tenant-header`), so `sessionsPerTenant` counts per tenant. Not with
   * `policy.affinity.type` "copilot-jsonrpc" (its clients' tenants come from `principals`).
   * @default - a principal has no tenant of its own, and no tenant quota applies to it
   */
  readonly tenantHeader?: string;

  /**
   * JWT mode (ADR 0020): the agents verify `Authorization: Bearer <JWT>` on every request against
   * the issuer's keys and take the principal from it (`--jwt-issuer` and friends), answer 401 with
   * `WWW-Authenticate` otherwise, and serve the Protected Resource Metadata. Not with
   * `principalHeader` or `tenantHeader`; needs no `trustedProxies`.
   * @default - no token is verified (principals from `principalHeader` or `principals`)
   */
  readonly jwt?: FleetJwt;

  /**
   * The principals file (JSON mapping each client token to a principal, e.g. `{"tok-a": "alice"}`),
   * mounted for the agent as `--principals`. A secret: give a reference.
   * @default - no principals file
   */
  readonly principals?: AzureSecretSource;

  /**
   * The token the agent presents to a Copilot CLI started with `COPILOT_CONNECTION_TOKEN`; give the
   * CLI the same secret through `app.secretEnv`.
   * @default - none
   */
  readonly upstreamToken?: AzureSecretSource;

  /**
   * Bearer token of the agent's admin API.
   * @default - none
   */
  readonly adminToken?: AzureSecretSource;

  /**
   * An existing Redis for fleet coordination, as a `redis://` or `rediss://` URL (it holds the
   * password, so it is a secret reference).
   * @default - a new Azure Managed Redis, TLS only, its key handed to the agents as a secret
   */
  readonly redisUrl?: AzureSecretSource;

  /**
   * SKU of the Redis the fleet creates (not with `redisUrl`): an Azure Managed Redis SKU
   * (`Balanced_B1`, `MemoryOptimized_M10`, ...; `azurerm_managed_redis`), or "Basic", "Standard" or
   * "Premium" for the Azure Cache for Redis tiers, which Microsoft is retiring (kept for fleets that
   * already run on one).
   * @see https://learn.microsoft.com/azure/redis/overview
   * @default 'Balanced_B1'
   */
  readonly redisSkuName?: RedisSku;

  /**
   * Azure Cache for Redis only: size of the cache, 0-6 for Basic and Standard (C0-C6), 1-5 for
   * Premium (P1-P5). An Azure Managed Redis is sized by its SKU.
   * @default 1
   */
  readonly redisCapacity?: number;

  /**
   * Name of that cache; global across Azure.
   * @default - `sessionfleet-` and 12 hex characters of a hash of the construct's address
   */
  readonly redisCacheName?: string;

  /**
   * With a virtual network (Container Instances `subnetIds`, Container Apps
   * `infrastructureSubnetId`): give the Redis the fleet creates and the session-state storage
   * account private endpoints in `subnetId`, private DNS zones linked to `virtualNetworkId`, and
   * close their public endpoints, so neither is reachable from the internet.
   * @see https://learn.microsoft.com/azure/private-link/private-endpoint-overview
   * @default - Redis and storage keep their public endpoints (TLS and keys only)
   */
  readonly privateEndpoints?: AzurePrivateEndpointsOptions;

  /**
   * An existing resource group to create the fleet in.
   * @default - a new resource group named `<name>-rg` in `location`
   */
  readonly resourceGroupName?: string;

  /**
   * Azure region of the fleet, e.g. `westeurope`. Required when a new resource group is created.
   * @default - the location of the existing resource group `resourceGroupName`
   */
  readonly location?: string;

  /**
   * The fleet's name for the agents (`--fleet`): agents on one Redis coordinate only with agents of
   * the same fleet name, so two fleets sharing a Redis stay two fleets.
   * @default - the construct id in kebab case and 8 hex characters of a hash of the construct path
   */
  readonly fleetName?: string;

  /**
   * Base of the names of the fleet's Azure resources.
   * @default - `sessionfleet-` and 8 hex characters of a hash of the construct's address
   */
  readonly name?: string;

  /**
   * Name of the storage account holding the session-state share; global across Azure, 3-24
   * lowercase letters and digits.
   * @default - `sessionfleet` and 12 hex characters of a hash of the construct's address
   */
  readonly storageAccountName?: string;

  /**
   * Name of the Azure Files share for session state.
   * @default 'session-state'
   */
  readonly shareName?: string;

  /**
   * Size limit of the session-state share in GiB (1-5120).
   * @see https://learn.microsoft.com/azure/storage/files/storage-files-scale-targets
   * @default 100
   */
  readonly shareQuotaGiB?: number;

  /**
   * Where the share is mounted in the app container.
   * @default DEFAULT_SESSION_STATE_PATH ('/root/.copilot/session-state', the Copilot CLI's)
   */
  readonly sessionStatePath?: string;

  /**
   * Server of a private registry holding `app.image` (e.g. `myregistry.azurecr.io`); needs
   * `registryUsername` and `registryPassword`.
   * @default - images are pulled anonymously
   */
  readonly registryServer?: string;

  /**
   * Resource ID of the Azure Container Registry at `registryServer`: the fleet creates a
   * user-assigned identity, grants it AcrPull on this registry and pulls `app.image` with it (no
   * password). Creating the role assignment needs the right to assign roles on the registry.
   * @see https://learn.microsoft.com/azure/container-apps/managed-identity-image-pull
   * @default - pulled with `registryUsername` and `registryPassword`, or anonymously
   */
  readonly containerRegistryId?: string;

  /** @default - none */
  readonly registryUsername?: string;

  /** @default - none */
  readonly registryPassword?: AzureSecretSource;

  /**
   * Tags for every resource the fleet creates.
   * @default - none
   */
  readonly tags?: Record<string, string>;
}
