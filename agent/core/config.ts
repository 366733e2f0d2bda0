/**
 * The agent's configuration as every part of the agent reads it: parsed once from the command line
 * and the environment by `agent/config.ts`, resolved (the advertised address included) and frozen
 * before the agent starts. Only types live here, so `agent/core` and everything above it can name
 * the configuration without depending on how it is parsed.
 *
 * Every field is readonly, and the object the agent runs with is deep-frozen (URLs included): a
 * part that wants another value derives its own, so no reader sees the configuration change.
 */
import type { RedisEndpoint } from '../../policy/redis-url.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** What one client connection may cost (ADR 0017); every field resolved, defaults from `AGENT_LIMIT_DEFAULTS`. */
export interface ConnectionLimits {
  readonly copilot: {
    readonly handshakeFrameBytes: number;
    readonly maxFrameBytes: number;
    readonly handshakeTimeoutMs: number;
    readonly maxUnauthenticated: number;
  };
  readonly http: {
    readonly headersTimeoutMs: number;
    readonly requestTimeoutMs: number;
    readonly maxHeaderBytes: number;
    readonly maxBodyBytes: number;
    readonly maxConnections: number;
    readonly bodyGateBytes: number;
    readonly bodyIdleTimeoutMs: number;
    readonly bodyMinBytesPerSecond: number;
  };
}

/** JWT mode (`--jwt-issuer` and friends): the agent as an OAuth resource server (ADR 0020). */
export interface JwtConfig {
  /** `iss` every token must carry, exactly; also where the keys are discovered. */
  readonly issuer: string;
  /** `aud` every token must carry: the resource's own URL, as clients reach it. */
  readonly audience: string;
  /** The issuer's JWKS; unset: discovered from the issuer's metadata. */
  readonly jwksUrl?: string;
  /** The claim naming the principal (qualified by the issuer). */
  readonly principalClaim: string;
  /** The claim naming the principal's tenant; unset: `--tenant`. */
  readonly tenantClaim?: string;
}

export interface AgentConfig {
  readonly policyFile: string;
  readonly upstream: URL;
  readonly listen: HostPort;
  readonly adminListen: HostPort;
  /** The fleet store (`--redis`), parsed once at start-up; unset: the in-process coordinator. */
  readonly redis?: RedisEndpoint;
  /** The fleet's name (Redis key prefix `sessionfleet:{<fleet>}:`); unset means `default`. */
  readonly fleet?: string;
  /** Owner-hint keys, comma-separated (`SESSIONFLEET_FLEET_KEY`). */
  readonly fleetKey?: string;
  /** The fleet lease (`--fleet-lease-ms`); unset means the coordinator's default (10 s). */
  readonly fleetLeaseMs?: number;
  /** The reconcile's time budget at start (`--fleet-reconcile-ms`, 0: off); unset means 10 s. */
  readonly fleetReconcileMs?: number;
  readonly sessionStateDir?: string;
  /** The app's private session-state directory (`--app-state-dir`): staging on (ADR 0019). */
  readonly appStateDir?: string;
  readonly instanceId: string;
  readonly advertise: URL;
  /** False when `advertise` was derived (from the listen address or this host's IP). */
  readonly advertiseExplicit: boolean;
  readonly principalsFile?: string;
  readonly principalHeader?: string;
  /** JWT mode: principals from verified bearer tokens; exclusive with the trusted headers. */
  readonly jwt?: JwtConfig;
  /** CIDRs the principal header is accepted from (`--trusted-proxies`); unset: any address. */
  readonly trustedProxies?: readonly string[];
  /** `--allowed-hosts`: Host values served (DNS-rebinding protection); unset: by listen address. */
  readonly allowedHosts?: readonly string[];
  /** `--allowed-origins`: browser origins allowed; unset: by listen address. */
  readonly allowedOrigins?: readonly string[];
  /** HTTP fronts: the trusted header naming the principal's tenant (lower case). */
  readonly tenantHeader?: string;
  /** The tenant this instance serves (`--tenant`): that of every principal without its own. */
  readonly tenant?: string;
  readonly upstreamToken?: string;
  readonly adminToken?: string;
  readonly healthPath?: string;
  readonly probeIntervalMs: number;
  readonly unhealthyAfterMs: number;
  readonly logLevel: string;
  /**
   * Limits per connection and request, before and after authentication (`--copilot-*`, `--http-*`);
   * always set by `parseAgentConfig`, unset (the defaults) in configurations tests build by hand.
   */
  readonly limits?: ConnectionLimits;
  /** Flags that were accepted but have no effect (fleet flags without --redis), logged at start. */
  readonly warnings?: readonly string[];
}
