/**
 * The HTTP front's settings: every tunable with its named default, normalized once from the
 * policy and the command line, and the combinations the front cannot serve rejected up front.
 */
import type { Policy } from '../../policy/index.js';
import type { AgentConfig, JwtConfig } from '../core/config.js';
import { type HttpLimits, httpLimits } from './limits.js';

export const HTTP_FRONT_DEFAULTS = {
  /**
   * A session-less POST under `mcp-streamable-http` is read up to this many bytes to tell an
   * `initialize` (a new session) from anything else. Other bodies are read only up to the body
   * gate (`--http-body-gate-bytes`, ADR 0023) before they stream on.
   */
  initializePeekBytes: 1024 * 1024,
  /** Give up looking for the `endpoint` event after this many bytes of an SSE stream. */
  endpointScanBytes: 64 * 1024,
  /** The upstream must send response headers within this (long polls included). */
  upstreamHeadersTimeoutMs: 300_000,
  upstreamConnectTimeoutMs: 10_000,
  /** The best-effort DELETE sent upstream when an MCP session expires or is terminated. */
  upstreamDeleteTimeoutMs: 5_000,
  /** Above a typical load balancer's idle timeout (60 s), so the balancer closes first. */
  clientKeepAliveTimeoutMs: 65_000,
  /** `Retry-After` for a throttled request, a draining instance and an unreachable upstream. */
  retryAfterSeconds: 1,
  /** Upper bound of the `Retry-After` computed for a full instance (seconds to the next free slot). */
  maxSessionRetryAfterSeconds: 60,
} as const;

export interface HttpFrontOptions {
  initializePeekBytes?: number;
  endpointScanBytes?: number;
  upstreamHeadersTimeoutMs?: number;
  upstreamConnectTimeoutMs?: number;
  upstreamDeleteTimeoutMs?: number;
  clientKeepAliveTimeoutMs?: number;
}

export type HttpAffinity = Exclude<Policy['affinity'], { type: 'copilot-jsonrpc' }>;

export interface HttpFrontSettings extends Required<HttpFrontOptions> {
  readonly affinity: HttpAffinity;
  /** MCP transports answer rejections with JSON-RPC error objects. */
  readonly jsonRpcErrors: boolean;
  readonly expiredSessionStatus: number;
  /** `http://host:port` of the instance. */
  readonly upstreamOrigin: string;
  /** What the front sends as `Host`: the upstream's own address (MCP servers refuse other hosts). */
  readonly upstreamHost: string;
  readonly upstreamHostname: string;
  readonly upstreamPort: number;
  /** Lower-cased header naming the principal, set by a trusted authenticating proxy. */
  readonly principalHeader: string | undefined;
  /** Lower-cased header naming the principal's tenant, set by the same proxy. */
  readonly tenantHeader: string | undefined;
  readonly cookieMaxAgeSeconds: number;
  /** Time, size and count limits of client requests (`--http-*`, ADR 0017). */
  readonly limits: HttpLimits;
  /** JWT mode (ADR 0020): the issuer and audience tokens are verified against. */
  readonly jwt: JwtConfig | undefined;
  /**
   * Whether `Authorization` is kept from the upstream: in JWT mode unless the policy's
   * `forwardBearerToken` says otherwise (MCP forbids passing a token through by default).
   * Agent-to-agent hops keep it: the owner agent verifies the token again.
   */
  readonly stripAuthorization: boolean;
  /** Lower-cased `Mcp-Param-*` header whose value is an affinity key (the policy's `handleHeader`). */
  readonly handleHeader: string | undefined;
}

export function normalizeHttpFrontOptions(
  policy: Policy,
  config: Pick<AgentConfig, 'upstream' | 'principalHeader' | 'tenantHeader' | 'limits' | 'jwt'>,
  options: HttpFrontOptions = {},
): HttpFrontSettings {
  const affinity = policy.affinity;
  if (affinity.type === 'copilot-jsonrpc') {
    throw new Error('the HTTP front cannot serve affinity.type "copilot-jsonrpc": that is the Copilot front');
  }
  if (config.upstream.protocol !== 'http:') {
    throw new Error(`--upstream (${config.upstream.href}) must be http://host:port for the HTTP front`);
  }
  const port = Number(config.upstream.port);
  const settings: HttpFrontSettings = {
    initializePeekBytes: options.initializePeekBytes ?? HTTP_FRONT_DEFAULTS.initializePeekBytes,
    endpointScanBytes: options.endpointScanBytes ?? HTTP_FRONT_DEFAULTS.endpointScanBytes,
    upstreamHeadersTimeoutMs: options.upstreamHeadersTimeoutMs ?? HTTP_FRONT_DEFAULTS.upstreamHeadersTimeoutMs,
    upstreamConnectTimeoutMs: options.upstreamConnectTimeoutMs ?? HTTP_FRONT_DEFAULTS.upstreamConnectTimeoutMs,
    upstreamDeleteTimeoutMs: options.upstreamDeleteTimeoutMs ?? HTTP_FRONT_DEFAULTS.upstreamDeleteTimeoutMs,
    clientKeepAliveTimeoutMs: options.clientKeepAliveTimeoutMs ?? HTTP_FRONT_DEFAULTS.clientKeepAliveTimeoutMs,
    affinity,
    jsonRpcErrors: affinity.type === 'mcp-streamable-http' || affinity.type === 'mcp-sse',
    expiredSessionStatus: policy.expiredSessionStatus,
    upstreamOrigin: config.upstream.origin,
    upstreamHost: config.upstream.host,
    upstreamHostname: config.upstream.hostname.replace(/^\[|\]$/g, ''),
    upstreamPort: port,
    principalHeader: config.principalHeader?.toLowerCase(),
    tenantHeader: config.tenantHeader?.toLowerCase(),
    cookieMaxAgeSeconds: policy.sessionLifetimeSeconds,
    limits: httpLimits(config.limits),
    jwt: config.jwt,
    stripAuthorization: config.jwt !== undefined && policy.forwardBearerToken !== true,
    handleHeader: policy.handleHeader?.toLowerCase(),
  };
  for (const key of ['initializePeekBytes', 'endpointScanBytes', 'upstreamHeadersTimeoutMs'] as const) {
    if (!(settings[key] > 0)) throw new Error(`HTTP front option ${key} (${settings[key]}) must be above 0`);
  }
  return settings;
}
