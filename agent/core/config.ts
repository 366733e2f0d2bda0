/**
 * The agent's configuration as every part of the agent reads it: parsed once from the command line
 * and the environment by `agent/config.ts`, resolved (the advertised address included) and frozen
 * before the agent starts. Only types live here, so `agent/core` and everything above it can name
 * the configuration without depending on how it is parsed.
 */
export interface HostPort {
  host: string;
  port: number;
}

export interface AgentConfig {
  policyFile: string;
  upstream: URL;
  listen: HostPort;
  adminListen: HostPort;
  redisUrl?: string;
  /** The fleet's name (Redis key prefix `sessionfleet:{<fleet>}:`); unset means `default`. */
  fleet?: string;
  /** Owner-hint keys, comma-separated (`SESSIONFLEET_FLEET_KEY`). */
  fleetKey?: string;
  /** The fleet lease (`--fleet-lease-ms`); unset means the coordinator's default (10 s). */
  fleetLeaseMs?: number;
  sessionStateDir?: string;
  instanceId: string;
  advertise: URL;
  /** False when `advertise` was derived (from the listen address or this host's IP). */
  advertiseExplicit: boolean;
  principalsFile?: string;
  principalHeader?: string;
  /** `--allowed-hosts`: Host values served (DNS-rebinding protection); unset: by listen address. */
  allowedHosts?: readonly string[];
  /** `--allowed-origins`: browser origins allowed; unset: by listen address. */
  allowedOrigins?: readonly string[];
  /** HTTP fronts: the trusted header naming the principal's tenant (lower case). */
  tenantHeader?: string;
  /** The tenant this instance serves (`--tenant`): that of every principal without its own. */
  tenant?: string;
  upstreamToken?: string;
  adminToken?: string;
  healthPath?: string;
  probeIntervalMs: number;
  unhealthyAfterMs: number;
  logLevel: string;
  /** Flags that were accepted but have no effect (fleet flags without --redis), logged at start. */
  warnings?: readonly string[];
}
