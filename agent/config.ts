/**
 * The agent's command line (SPEC.md §8). Every flag may also come from `SESSIONFLEET_<FLAG>`
 * (`--admin-listen` → `SESSIONFLEET_ADMIN_LISTEN`); a flag on the command line wins. Errors name the
 * flag or variable, the value and the rule, and are all reported at once.
 */

import { createServer } from 'node:net';
import type { NetworkInterfaceInfo } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import {
  AGENT_EXECUTABLE,
  AGENT_FLAGS,
  AGENT_LIMIT_DEFAULTS,
  type AgentFlag,
  DEFAULT_ADMIN_LISTEN,
  DEFAULT_LISTEN,
  envName,
} from '../policy/agent-interface.js';
import { HEADER_NAME_RULE, isHeaderName, sameHeaderName } from '../policy/header-name.js';
import type { Policy } from '../policy/index.js';
import { parseRedisUrl, type RedisEndpoint } from '../policy/redis-url.js';
import { parseCommandLine } from './cli-args.js';
import type { AgentConfig, ConnectionLimits, HostPort, JwtConfig } from './core/config.js';
import { deepFrozen } from './core/frozen.js';
import { isName, NAME_RULE } from './core/tenancy.js';
import { parseTrustedProxies, TRUSTED_PROXIES_RULE } from './core/trusted-proxies.js';
import { hostListProblem } from './http/host-check.js';

/** The range `--fleet-lease-ms` accepts: at least a second (three heartbeats of 333 ms), at most five minutes. */
export const FLEET_LEASE_MS = { min: 1000, max: 300_000 } as const;

/** Flags that only configure fleet coordination, so mean nothing without `--redis`. */
const FLEET_ONLY_FLAGS = ['fleet', 'fleet-key', 'fleet-lease-ms', 'fleet-reconcile-ms'] as const;

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid agent configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Parses `host:port` (IPv6 as `[::1]:port`); port 0 asks the OS for a free one. */
export function parseHostPort(text: string): HostPort | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Reads flags from `argv` and the environment. Throws `ConfigError` listing every problem.
 * `defaults.hostname` stands in for `os.hostname()` in tests.
 */
export function parseAgentConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  defaults: { hostname?: string; interfaces?: NodeJS.Dict<NetworkInterfaceInfo[]> } = {},
): AgentConfig {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseCommandLine(argv, AGENT_FLAGS));
  } catch (error) {
    throw new ConfigError([error instanceof Error ? error.message : String(error)]);
  }

  const problems: string[] = [];
  const get = (flag: AgentFlag): { value: string; source: string } | undefined => {
    const fromArgs = values[flag];
    if (typeof fromArgs === 'string') return { value: fromArgs, source: `--${flag}` };
    const fromEnv = env[envName(flag)];
    if (fromEnv !== undefined && fromEnv !== '') return { value: fromEnv, source: envName(flag) };
    return undefined;
  };
  const required = (flag: AgentFlag) => {
    const v = get(flag);
    if (!v) problems.push(`--${flag} is required (or set ${envName(flag)})`);
    return v;
  };
  const hostPort = (flag: AgentFlag, fallback: string): HostPort => {
    const v = get(flag) ?? { value: fallback, source: `--${flag}` };
    const parsed = parseHostPort(v.value);
    if (!parsed) {
      problems.push(`${v.source} (${JSON.stringify(v.value)}) must be host:port, e.g. 127.0.0.1:8080 or [::1]:8080`);
      return { host: '127.0.0.1', port: 0 };
    }
    return parsed;
  };
  const positiveInt = (flag: AgentFlag, fallback: number): number => {
    const v = get(flag);
    if (!v) return fallback;
    const n = Number(v.value);
    if (!Number.isInteger(n) || n <= 0) {
      problems.push(`${v.source} (${JSON.stringify(v.value)}) must be a whole number above 0`);
      return fallback;
    }
    return n;
  };

  /** A whole number in [min, max]; the rule is named in the problem. */
  const boundedInt = (flag: AgentFlag, fallback: number, min: number, max: number): number => {
    const v = get(flag);
    if (!v) return fallback;
    const n = Number(v.value);
    if (!/^\d+$/.test(v.value.trim()) || n < min || n > max) {
      problems.push(`${v.source} (${JSON.stringify(v.value)}) must be a whole number from ${min} to ${max}`);
      return fallback;
    }
    return n;
  };
  const C = AGENT_LIMIT_DEFAULTS.copilot;
  const H = AGENT_LIMIT_DEFAULTS.http;
  const GiB = 1024 * 1024 * 1024;
  const limits: {
    copilot: ConnectionLimits['copilot'];
    http: { -readonly [K in keyof ConnectionLimits['http']]: number };
  } = {
    copilot: {
      handshakeTimeoutMs: boundedInt('copilot-handshake-timeout-ms', C.handshakeTimeoutMs, 100, 600_000),
      maxUnauthenticated: boundedInt('copilot-max-unauthenticated', C.maxUnauthenticated, 1, 1_000_000),
      handshakeFrameBytes: boundedInt('copilot-handshake-frame-bytes', C.handshakeFrameBytes, 1024, GiB),
      maxFrameBytes: boundedInt('copilot-max-frame-bytes', C.maxFrameBytes, 1024, GiB),
    },
    http: {
      headersTimeoutMs: boundedInt('http-headers-timeout-ms', H.headersTimeoutMs, 100, 3_600_000),
      requestTimeoutMs: boundedInt('http-request-timeout-ms', H.requestTimeoutMs, 100, 86_400_000),
      maxHeaderBytes: boundedInt('http-max-header-bytes', H.maxHeaderBytes, 1024, 1024 * 1024),
      maxBodyBytes: boundedInt('http-max-body-bytes', H.maxBodyBytes, 1, 64 * GiB),
      maxConnections: boundedInt('http-max-connections', H.maxConnections, 1, 1_000_000),
      bodyGateBytes: boundedInt('http-body-gate-bytes', H.bodyGateBytes, 0, 64 * 1024 * 1024),
      bodyIdleTimeoutMs: boundedInt('http-body-idle-timeout-ms', H.bodyIdleTimeoutMs, 100, 3_600_000),
      bodyMinBytesPerSecond: boundedInt('http-body-min-bytes-per-second', H.bodyMinBytesPerSecond, 1, GiB),
    },
  };
  if (limits.copilot.handshakeFrameBytes > limits.copilot.maxFrameBytes) {
    problems.push(
      `--copilot-handshake-frame-bytes (${limits.copilot.handshakeFrameBytes}) must not exceed --copilot-max-frame-bytes (${limits.copilot.maxFrameBytes})`,
    );
  }
  if (limits.http.headersTimeoutMs > limits.http.requestTimeoutMs && !get('http-headers-timeout-ms')) {
    // Only the request timeout was lowered: the headers' default follows it down.
    limits.http.headersTimeoutMs = limits.http.requestTimeoutMs;
  } else if (limits.http.headersTimeoutMs > limits.http.requestTimeoutMs) {
    problems.push(
      `--http-headers-timeout-ms (${limits.http.headersTimeoutMs}) must not exceed --http-request-timeout-ms (${limits.http.requestTimeoutMs}): the headers are part of the request`,
    );
  }

  const policy = required('policy');
  const upstreamText = required('upstream');
  let upstream = new URL('http://127.0.0.1:1');
  if (upstreamText) {
    try {
      upstream = new URL(upstreamText.value);
      if (!['http:', 'tcp:'].includes(upstream.protocol) || upstream.port === '') {
        problems.push(
          `${upstreamText.source} (${JSON.stringify(upstreamText.value)}) must be http://host:port or tcp://host:port (with an explicit port)`,
        );
      }
    } catch {
      problems.push(
        `${upstreamText.source} (${JSON.stringify(upstreamText.value)}) is not a URL: use http://host:port or tcp://host:port`,
      );
    }
  }
  const listen = hostPort('listen', DEFAULT_LISTEN);
  const adminListen = hostPort('admin-listen', DEFAULT_ADMIN_LISTEN);
  if (
    listen.port !== 0 &&
    listen.port === adminListen.port &&
    (listen.host === adminListen.host || listen.host === '0.0.0.0')
  ) {
    problems.push(
      `--admin-listen (${formatHostPort(adminListen)}) must not be the client port (--listen ${formatHostPort(listen)})`,
    );
  }

  const redis = get('redis');
  let fleetStore: RedisEndpoint | undefined;
  if (redis) {
    const parsed = parseRedisUrl(redis.value);
    if ('problem' in parsed) problems.push(`${redis.source} ${parsed.problem}`);
    else fleetStore = parsed.endpoint;
  }
  const fleet = get('fleet');
  if (fleet && !/^[A-Za-z0-9._-]{1,64}$/.test(fleet.value)) {
    problems.push(`${fleet.source} (${JSON.stringify(fleet.value)}) must be 1–64 letters, digits, '.', '_' or '-'`);
  }
  const fleetKey = get('fleet-key');
  if (fleetKey) {
    const keys = fleetKey.value.split(',').map((k) => k.trim());
    if (keys.some((k) => k.length < 16)) {
      // Never echo the value: it is a secret.
      problems.push(`${fleetKey.source} must be one or more comma-separated keys of at least 16 characters each`);
    }
  }
  const fleetLease = get('fleet-lease-ms');
  let fleetLeaseMs: number | undefined;
  if (fleetLease) {
    const n = Number(fleetLease.value);
    if (!/^\d+$/.test(fleetLease.value) || n < FLEET_LEASE_MS.min || n > FLEET_LEASE_MS.max) {
      problems.push(
        `${fleetLease.source} (${JSON.stringify(fleetLease.value)}) must be a whole number of milliseconds from ${FLEET_LEASE_MS.min} to ${FLEET_LEASE_MS.max} (${FLEET_LEASE_MS.min / 1000} s to ${FLEET_LEASE_MS.max / 60_000} min)`,
      );
    } else {
      fleetLeaseMs = n;
    }
  }
  const fleetReconcileMs =
    get('fleet-reconcile-ms') === undefined ? undefined : boundedInt('fleet-reconcile-ms', 10_000, 0, 300_000);
  const warnings: string[] = [];
  if (!redis) {
    for (const flag of FLEET_ONLY_FLAGS) {
      const given = get(flag);
      if (given)
        warnings.push(
          `${given.source} has no effect without --redis (or ${envName('redis')}): it configures fleet coordination`,
        );
    }
  }
  const appStateFlag = get('app-state-dir');
  if (appStateFlag && upstreamText && upstream.protocol !== 'tcp:') {
    warnings.push(
      `${appStateFlag.source} has no effect with an http:// upstream: the agent stages the session state of the Copilot CLI (tcp://) only`,
    );
  }
  const instanceId = get('instance-id')?.value ?? defaults.hostname ?? AGENT_EXECUTABLE;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(instanceId)) {
    problems.push(`--instance-id (${JSON.stringify(instanceId)}) must be 1–128 letters, digits, '.', '_' or '-'`);
  }
  const advertiseText = get('advertise');
  let advertise = new URL(
    `http://${formatHostPort({ ...listen, host: advertisedHost(listen.host, defaults.interfaces ?? {}) })}`,
  );
  if (advertiseText) {
    try {
      advertise = new URL(advertiseText.value);
    } catch {
      problems.push(`${advertiseText.source} (${JSON.stringify(advertiseText.value)}) is not a URL`);
    }
  }
  const logLevel = get('log-level');
  if (logLevel && !LOG_LEVELS.includes(logLevel.value)) {
    problems.push(`${logLevel.source} (${JSON.stringify(logLevel.value)}) must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const healthPath = get('health-path');
  if (healthPath && !healthPath.value.startsWith('/')) {
    problems.push(`${healthPath.source} (${JSON.stringify(healthPath.value)}) must start with /`);
  }
  const principalHeader = get('principal-header');
  if (principalHeader && !isHeaderName(principalHeader.value)) {
    problems.push(`${principalHeader.source} (${JSON.stringify(principalHeader.value)}) must be ${HEADER_NAME_RULE}`);
  }
  for (const [flag, kind] of [
    ['allowed-hosts', 'hosts'],
    ['allowed-origins', 'origins'],
  ] as const) {
    const given = get(flag);
    const problem = given && hostListProblem(kind, given.value);
    if (given && problem) problems.push(`${given.source} ${problem}`);
  }
  const tenantHeader = get('tenant-header');
  if (tenantHeader && !isHeaderName(tenantHeader.value)) {
    problems.push(`${tenantHeader.source} (${JSON.stringify(tenantHeader.value)}) must be ${HEADER_NAME_RULE}`);
  } else if (tenantHeader && principalHeader && sameHeaderName(tenantHeader.value, principalHeader.value)) {
    problems.push(
      `${tenantHeader.source} (${JSON.stringify(tenantHeader.value)}) must not be the header naming the principal (${principalHeader.source})`,
    );
  }
  const tenant = get('tenant');
  if (tenant && !isName(tenant.value)) {
    problems.push(`${tenant.source} (${JSON.stringify(tenant.value)}) must be ${NAME_RULE}`);
  }

  const config: { -readonly [K in keyof AgentConfig]: AgentConfig[K] } = {
    policyFile: policy?.value ?? '',
    upstream,
    listen,
    adminListen,
    instanceId,
    advertise,
    advertiseExplicit: advertiseText !== undefined,
    probeIntervalMs: positiveInt('probe-interval-ms', 2000),
    unhealthyAfterMs: positiveInt('unhealthy-after-ms', 30000),
    logLevel: logLevel?.value ?? 'info',
    limits,
  };
  if (fleetStore) config.redis = fleetStore;
  if (fleet) config.fleet = fleet.value;
  if (fleetKey) config.fleetKey = fleetKey.value;
  if (fleetLeaseMs !== undefined) config.fleetLeaseMs = fleetLeaseMs;
  if (fleetReconcileMs !== undefined) config.fleetReconcileMs = fleetReconcileMs;
  if (warnings.length > 0) config.warnings = warnings;
  const sessionStateDir = get('session-state-dir');
  if (sessionStateDir) config.sessionStateDir = sessionStateDir.value;
  const appStateDir = appStateFlag;
  if (appStateDir) {
    if (!sessionStateDir)
      problems.push(
        `${appStateDir.source} needs --session-state-dir: the agent stages session state from the shared directory into the app's`,
      );
    else if (resolvePath(appStateDir.value) === resolvePath(sessionStateDir.value))
      problems.push(
        `${appStateDir.source} (${JSON.stringify(appStateDir.value)}) must not be --session-state-dir: the app's directory is private, the shared one is the agent's`,
      );
    else config.appStateDir = appStateDir.value;
  }
  const principals = get('principals');
  if (principals) config.principalsFile = principals.value;
  if (principalHeader) config.principalHeader = principalHeader.value.toLowerCase();
  const trustedProxies = get('trusted-proxies');
  if (trustedProxies) {
    const cidrs = parseTrustedProxies(trustedProxies.value);
    if (!cidrs)
      problems.push(`${trustedProxies.source} (${JSON.stringify(trustedProxies.value)}) ${TRUSTED_PROXIES_RULE}`);
    else if (!principalHeader)
      problems.push(`${trustedProxies.source} needs --principal-header: it says where that header may come from`);
    else config.trustedProxies = cidrs;
  }
  const jwt = parseJwtFlags(get, problems);
  if (jwt) config.jwt = jwt;
  const list = (flag: 'allowed-hosts' | 'allowed-origins') =>
    get(flag)
      ?.value.split(',')
      .map((entry) => entry.trim());
  const allowedHosts = list('allowed-hosts');
  if (allowedHosts) config.allowedHosts = allowedHosts;
  const allowedOrigins = list('allowed-origins');
  if (allowedOrigins) config.allowedOrigins = allowedOrigins;
  if (tenantHeader) config.tenantHeader = tenantHeader.value.toLowerCase();
  if (tenant) config.tenant = tenant.value;
  const upstreamToken = get('upstream-token');
  if (upstreamToken) config.upstreamToken = upstreamToken.value;
  const adminToken = get('admin-token');
  if (adminToken) config.adminToken = adminToken.value;
  if (healthPath) config.healthPath = healthPath.value;

  if (problems.length > 0) throw new ConfigError(problems);
  return deepFrozen(config);
}

const JWT_FLAGS = ['jwt-audience', 'jwks-url', 'jwt-principal-claim', 'jwt-tenant-claim'] as const;
/** The trusted-header mode's flags: a principal is a verified token's or a proxy's word, never both. */
const HEADER_MODE_FLAGS = ['principal-header', 'tenant-header', 'trusted-proxies'] as const;
const LOOPBACK_HOST = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;
const URL_RULE = 'must be an https:// URL (http:// only on a loopback host), without a fragment';

/** An issuer, audience or JWKS URL, or why not. Keys fetched over plain HTTP could be anyone's. */
function webUrl(text: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.hash !== '' || text.includes('#')) return undefined;
  if (url.protocol === 'https:') return url;
  return url.protocol === 'http:' && LOOPBACK_HOST.test(url.hostname) ? url : undefined;
}

/** `--jwt-*` and `--jwks-url`: JWT mode, checked as a whole (ADR 0020). */
function parseJwtFlags(
  get: (flag: AgentFlag) => { value: string; source: string } | undefined,
  problems: string[],
): JwtConfig | undefined {
  const issuer = get('jwt-issuer');
  if (!issuer) {
    for (const flag of JWT_FLAGS) {
      const given = get(flag);
      if (given)
        problems.push(`${given.source} needs --jwt-issuer (or ${envName('jwt-issuer')}): it configures JWT mode`);
    }
    return undefined;
  }
  for (const flag of HEADER_MODE_FLAGS) {
    const given = get(flag);
    if (given)
      problems.push(
        `${given.source} cannot be used with ${issuer.source}: the principal comes either from a verified bearer token (JWT mode) or from a trusted proxy's header, not both`,
      );
  }
  const issuerUrl = webUrl(issuer.value);
  if (issuerUrl?.search !== '')
    problems.push(`${issuer.source} (${JSON.stringify(issuer.value)}) ${URL_RULE} or query`);
  const audience = get('jwt-audience');
  if (!audience)
    problems.push(
      `--jwt-audience is required with ${issuer.source} (or set ${envName('jwt-audience')}): the URL clients reach this resource at, which every token's aud must name`,
    );
  else if (!webUrl(audience.value)) problems.push(`${audience.source} (${JSON.stringify(audience.value)}) ${URL_RULE}`);
  const jwksUrl = get('jwks-url');
  if (jwksUrl && !webUrl(jwksUrl.value))
    problems.push(`${jwksUrl.source} (${JSON.stringify(jwksUrl.value)}) ${URL_RULE}`);
  const claims: Record<string, string | undefined> = {};
  for (const flag of ['jwt-principal-claim', 'jwt-tenant-claim'] as const) {
    const given = get(flag);
    if (given && !isName(given.value))
      problems.push(`${given.source} (${JSON.stringify(given.value)}) must be ${NAME_RULE}`);
    claims[flag] = given?.value;
  }
  if (
    claims['jwt-tenant-claim'] !== undefined &&
    claims['jwt-tenant-claim'] === (claims['jwt-principal-claim'] ?? 'sub')
  )
    problems.push(
      `--jwt-tenant-claim (${JSON.stringify(claims['jwt-tenant-claim'])}) must not be the claim naming the principal`,
    );
  return {
    issuer: issuer.value,
    audience: audience?.value ?? '',
    ...(jwksUrl ? { jwksUrl: jwksUrl.value } : {}),
    principalClaim: claims['jwt-principal-claim'] ?? 'sub',
    ...(claims['jwt-tenant-claim'] !== undefined ? { tenantClaim: claims['jwt-tenant-claim'] } : {}),
  };
}

/**
 * The configuration the agent runs with: `--listen` on port 0 (let the OS choose, as tests do)
 * is resolved to the port now, so that the advertised address peers are told is known before
 * anything reads the configuration, which then never changes. The port is bound and released
 * here and bound again by the front a moment later; `reservePort` stands in for that in tests.
 */
export async function resolveAgentConfig(
  config: AgentConfig,
  reservePort: (host: string) => Promise<number> = freePort,
): Promise<AgentConfig> {
  if (config.listen.port !== 0) return deepFrozen(config);
  const listen = { host: config.listen.host, port: await reservePort(config.listen.host) };
  const advertise = config.advertiseExplicit
    ? config.advertise
    : new URL(
        `http://${formatHostPort({ host: config.advertise.hostname.replace(/^\[|\]$/g, ''), port: listen.port })}`,
      );
  return deepFrozen({ ...config, listen, advertise });
}

/** A port the OS considers free on `host`; fails like a listen would (EADDRNOTAVAIL, EACCES). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * The rules between the flags and the policy, checked at start once the policy is read: the
 * upstream's scheme matches the affinity, and tenant isolation names the tenant it serves.
 */
export function checkConfigAgainstPolicy(config: AgentConfig, policy: Policy): string[] {
  const problems: string[] = [];
  const copilot = policy.affinity.type === 'copilot-jsonrpc';
  const tcp = config.upstream.protocol === 'tcp:';
  if (copilot && !tcp)
    problems.push(`--upstream (${config.upstream.href}) must be tcp://host:port for affinity.type "copilot-jsonrpc"`);
  if (!copilot && tcp)
    problems.push(
      `--upstream (${config.upstream.href}) must be http://host:port for affinity.type ${JSON.stringify(policy.affinity.type)}`,
    );
  if (policy.affinity.type === 'header') {
    const sessionHeader = policy.affinity.headerName;
    for (const [flag, value] of [
      ['principal-header', config.principalHeader],
      ['tenant-header', config.tenantHeader],
    ] as const) {
      if (value !== undefined && sameHeaderName(value, sessionHeader))
        problems.push(
          `--${flag} (${JSON.stringify(value)}) must not be the header that carries the session id (affinity.headerName ${JSON.stringify(sessionHeader)})`,
        );
    }
  }
  if (policy.isolation === 'tenant' && config.tenant === undefined) {
    problems.push(
      `--tenant is required (or set ${envName('tenant')}) by the policy's isolation "tenant": an instance serves exactly one tenant, and refuses the others`,
    );
  }
  return problems;
}

/**
 * The host peers should use when `--advertise` is not given: the listen host, or for a wildcard
 * listen address this machine's first non-loopback IPv4 address (a pod IP, a container group IP),
 * so agents of a fleet reach each other without extra configuration.
 */
export function advertisedHost(listenHost: string, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): string {
  if (listenHost !== '0.0.0.0' && listenHost !== '::') return listenHost;
  for (const name of Object.keys(interfaces).sort()) {
    for (const info of interfaces[name] ?? []) {
      if (info.family === 'IPv4' && !info.internal) return info.address;
    }
  }
  return '127.0.0.1';
}
