/**
 * The agent as an OAuth 2.1 resource server (issue 19 §1, ADR 0020): a principal from a verified
 * `Authorization: Bearer <JWT>` instead of a trusted header. Signature from the issuer's JWKS
 * (jose's remote key set: cached, fetched again on an unknown `kid` at most once per cool-down,
 * each fetch bounded in time and size), `iss`, `aud` (the resource's own URL, RFC 8707),
 * `exp`/`nbf` with a small skew, and an allow-list of asymmetric algorithms (never `none`, never
 * HS*: a public key must not double as an HMAC secret).
 *
 * The principal is the configured claim qualified by the issuer (`<issuer>#<claim>`), so two
 * issuers' `alice` are two users. Tokens are secrets: no error, message or log line built here
 * repeats one, nor a claim value besides the principal and tenant it yields.
 */
import { createRemoteJWKSet, customFetch, errors, type FetchImplementation, type JWTPayload, jwtVerify } from 'jose';
import type { AgentConfig, JwtConfig } from './config.js';
import { AgentError } from './errors.js';
import { type Caller, isName, tenantOf } from './tenancy.js';

/** Asymmetric algorithms only: `none` and HS* are refused before any key is looked at. */
export const JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;

export const JWT_DEFAULTS = {
  principalClaim: 'sub',
  /** Clock skew allowed on `exp` and `nbf`. */
  clockToleranceSeconds: 30,
  /** A bearer token longer than this is refused unread (headers are small; keys are not). */
  maxTokenBytes: 8 * 1024,
  /** The most a JWKS or metadata document may weigh. */
  maxDocumentBytes: 256 * 1024,
  /** Each fetch of the issuer's metadata or keys gives up after this. */
  fetchTimeoutMs: 5_000,
  /** An unknown `kid` fetches the key set again at most this often (jose's cool-down). */
  refreshCooldownMs: 30_000,
  /** Keys are fetched again after this even when every `kid` is known (rotation, revocation). */
  keysMaxAgeMs: 10 * 60_000,
  /** A verified token is remembered this long at most (and never past its `exp`). */
  verifiedCacheMs: 60_000,
  verifiedCacheEntries: 2048,
  /** A failed discovery is not tried again before this. */
  discoveryRetryMs: 5_000,
} as const;

/** The tunables a test may shorten; production uses the defaults. */
export interface JwtTunables {
  readonly refreshCooldownMs?: number;
  readonly verifiedCacheMs?: number;
  readonly fetchTimeoutMs?: number;
}

/** Why a token was refused, as `details.reason` and the `error_description` says. */
export type TokenProblem =
  | 'malformed'
  | 'too-large'
  | 'algorithm'
  | 'signature'
  | 'unknown-key'
  | 'expired'
  | 'not-yet-valid'
  | 'issuer'
  | 'audience'
  | 'claim';

const PROBLEM_TEXT: Record<TokenProblem, string> = {
  malformed: 'the bearer token is not a signed JWT',
  'too-large': `the bearer token is longer than ${JWT_DEFAULTS.maxTokenBytes} bytes`,
  algorithm: `the bearer token is not signed with an allowed algorithm (${JWT_ALGORITHMS.join(', ')})`,
  signature: "the bearer token's signature does not verify",
  'unknown-key': "the bearer token is signed with a key the issuer's JWKS does not hold",
  expired: 'the bearer token has expired',
  'not-yet-valid': 'the bearer token is not valid yet (nbf)',
  issuer: 'the bearer token was issued by another issuer',
  audience: 'the bearer token is not meant for this resource (aud)',
  claim: 'the bearer token lacks a required claim',
};

/** The refusal of a token that does not verify. */
export function invalidToken(problem: TokenProblem, detail?: string): AgentError {
  return new AgentError('INVALID_TOKEN', detail ? `${PROBLEM_TEXT[problem]} (${detail})` : PROBLEM_TEXT[problem], {
    details: { reason: problem },
  });
}

/** `Authorization: Bearer <token>` → the token; undefined when absent; `malformed` for other schemes. */
export function bearerToken(header: string | string[] | undefined): string | undefined | 'malformed' {
  if (header === undefined) return undefined;
  if (Array.isArray(header)) return 'malformed';
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
  return match?.[1] ?? 'malformed';
}

/** Whether a token has a compact JWS's shape (three base64url parts): worth verifying. */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

/** A fetch that gives up past `maxBytes`, so an issuer (or whoever answers for it) cannot flood the agent. */
function boundedFetch(maxBytes: number): FetchImplementation {
  return async (url, options) => {
    const response = await fetch(url, options);
    const length = Number(response.headers.get('content-length') ?? 0);
    if (length > maxBytes) {
      await response.body?.cancel();
      throw new Error(`${url} answered ${length} bytes, more than ${maxBytes}`);
    }
    const reader = response.body?.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    while (reader) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel();
        throw new Error(`${url} answered more than ${maxBytes} bytes`);
      }
      chunks.push(value);
    }
    return new Response(Buffer.concat(chunks), { status: response.status, headers: response.headers });
  };
}

/**
 * Where an issuer's metadata lives: RFC 8414's `/.well-known/oauth-authorization-server` (the
 * suffix inserted before an issuer's path), then OpenID Connect's `<issuer>/.well-known/openid-configuration`.
 */
export function metadataUrls(issuer: string): URL[] {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return [
    new URL(`/.well-known/oauth-authorization-server${path}`, url.origin),
    new URL(`${url.origin}${path}/.well-known/openid-configuration`),
  ];
}

export class UnavailableKeysError extends Error {}

/** Verifies bearer tokens for one issuer and audience. One per agent; shared by both fronts. */
export class JwtVerifier {
  readonly issuer: string;
  private readonly audiences: string[];
  private keys: ReturnType<typeof createRemoteJWKSet> | undefined;
  private discovery: Promise<URL> | undefined;
  private discoveryFailedAt = 0;
  private readonly fetchImpl: FetchImplementation;
  private readonly verified = new Map<string, { caller: Caller; until: number }>();
  private readonly cooldownMs: number;
  private readonly cacheMs: number;
  private readonly timeoutMs: number;

  constructor(
    readonly settings: JwtConfig,
    private readonly config: Pick<AgentConfig, 'tenant'>,
    tunables: JwtTunables = {},
  ) {
    this.issuer = settings.issuer;
    this.audiences = [...new Set([settings.audience, new URL(settings.audience).href])];
    this.cooldownMs = tunables.refreshCooldownMs ?? JWT_DEFAULTS.refreshCooldownMs;
    this.cacheMs = tunables.verifiedCacheMs ?? JWT_DEFAULTS.verifiedCacheMs;
    this.timeoutMs = tunables.fetchTimeoutMs ?? JWT_DEFAULTS.fetchTimeoutMs;
    this.fetchImpl = boundedFetch(JWT_DEFAULTS.maxDocumentBytes);
    if (settings.jwksUrl) this.keys = this.keySet(new URL(settings.jwksUrl));
  }

  /** A token verified within the cache window: its caller at once (the hot path stays synchronous). */
  cached(token: string): Caller | undefined {
    const hit = this.verified.get(token);
    if (!hit) return undefined;
    if (hit.until > Date.now()) return hit.caller;
    this.verified.delete(token);
    return undefined;
  }

  /** The caller a bearer token names, or the refusal (INVALID_TOKEN, TOKEN_KEYS_UNAVAILABLE). */
  async verify(token: string): Promise<Caller | AgentError> {
    const hit = this.cached(token);
    if (hit) return hit;
    if (Buffer.byteLength(token) > JWT_DEFAULTS.maxTokenBytes) return invalidToken('too-large');
    if (!looksLikeJwt(token)) return invalidToken('malformed');
    let keys: ReturnType<typeof createRemoteJWKSet>;
    try {
      keys = await this.keySetOrDiscover();
    } catch (error) {
      return keysUnavailable(this.issuer, error);
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        issuer: this.issuer,
        audience: this.audiences,
        algorithms: [...JWT_ALGORITHMS],
        clockTolerance: JWT_DEFAULTS.clockToleranceSeconds,
        requiredClaims: ['exp'],
      }));
    } catch (error) {
      return this.refusal(error);
    }
    const caller = this.callerOf(payload);
    if (caller instanceof AgentError) return caller;
    this.remember(token, caller, payload.exp);
    return caller;
  }

  private callerOf(payload: JWTPayload): Caller | AgentError {
    const { principalClaim, tenantClaim } = this.settings;
    const subject = payload[principalClaim];
    const name = typeof subject === 'number' ? String(subject) : subject;
    if (typeof name !== 'string' || name === '') return invalidToken('claim', `no ${principalClaim}`);
    const principal = `${this.issuer}#${name}`;
    if (!isName(principal)) {
      return invalidToken('claim', `the ${principalClaim} qualified by the issuer must be 1-256 characters, no spaces`);
    }
    let own: string | undefined;
    if (tenantClaim) {
      const tenant = payload[tenantClaim];
      if (tenant !== undefined && !isName(tenant)) {
        return invalidToken('claim', `${tenantClaim} must be 1-256 characters, no spaces`);
      }
      own = tenant as string | undefined;
    }
    return { principal, tenant: tenantOf(own, this.config) };
  }

  private remember(token: string, caller: Caller, exp: number | undefined): void {
    const until = Math.min(Date.now() + this.cacheMs, (exp ?? 0) * 1000);
    if (until <= Date.now()) return;
    if (this.verified.size >= JWT_DEFAULTS.verifiedCacheEntries) {
      const oldest = this.verified.keys().next().value;
      if (oldest !== undefined) this.verified.delete(oldest);
    }
    this.verified.set(token, { caller, until });
  }

  private refusal(error: unknown): AgentError {
    if (error instanceof errors.JWTExpired) return invalidToken('expired');
    if (error instanceof errors.JWTClaimValidationFailed) {
      if (error.claim === 'iss') return invalidToken('issuer');
      if (error.claim === 'aud') return invalidToken('audience');
      if (error.claim === 'nbf') return invalidToken('not-yet-valid');
      return invalidToken('claim', error.claim);
    }
    if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported)
      return invalidToken('algorithm');
    if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys)
      return invalidToken('unknown-key');
    if (error instanceof errors.JWSSignatureVerificationFailed) return invalidToken('signature');
    if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid)
      return keysUnavailable(this.issuer, error);
    if (error instanceof errors.JOSEError && error.code === 'ERR_JOSE_GENERIC')
      return keysUnavailable(this.issuer, error);
    if (error instanceof errors.JOSEError) return invalidToken('malformed');
    // A fetch of the key set that failed (network, status, size).
    return keysUnavailable(this.issuer, error);
  }

  private keySet(url: URL): ReturnType<typeof createRemoteJWKSet> {
    return createRemoteJWKSet(url, {
      timeoutDuration: this.timeoutMs,
      cooldownDuration: this.cooldownMs,
      cacheMaxAge: JWT_DEFAULTS.keysMaxAgeMs,
      [customFetch]: this.fetchImpl,
    });
  }

  private async keySetOrDiscover(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    if (this.keys) return this.keys;
    if (!this.discovery) {
      if (Date.now() - this.discoveryFailedAt < JWT_DEFAULTS.discoveryRetryMs) {
        throw new Error('the last discovery failed moments ago');
      }
      this.discovery = this.discover().catch((error: unknown) => {
        this.discovery = undefined;
        this.discoveryFailedAt = Date.now();
        throw error;
      });
    }
    const url = await this.discovery;
    this.keys ??= this.keySet(url);
    return this.keys;
  }

  /** The issuer's `jwks_uri`, from its metadata (whose `issuer` must be the one configured, RFC 8414 §3.3). */
  private async discover(): Promise<URL> {
    const problems: string[] = [];
    for (const url of metadataUrls(this.issuer)) {
      try {
        const response = await this.fetchImpl(url.href, {
          headers: new Headers({ accept: 'application/json' }),
          method: 'GET',
          redirect: 'manual',
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        if (response.status !== 200) {
          problems.push(`${url.href} answered ${response.status}`);
          continue;
        }
        const metadata = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
        if (metadata.issuer !== this.issuer) {
          problems.push(`${url.href} names another issuer`);
          continue;
        }
        if (typeof metadata.jwks_uri !== 'string') {
          problems.push(`${url.href} has no jwks_uri`);
          continue;
        }
        return new URL(metadata.jwks_uri);
      } catch (error) {
        problems.push(`${url.href}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    throw new Error(`no usable metadata for issuer ${this.issuer} (${problems.join('; ')})`);
  }
}

function keysUnavailable(issuer: string, error: unknown): AgentError {
  const why = error instanceof Error ? error.message : String(error);
  return new AgentError('TOKEN_KEYS_UNAVAILABLE', `the agent cannot read the signing keys of ${issuer} (${why})`, {
    retryAfterSeconds: 5,
  });
}

/**
 * The Protected Resource Metadata document (RFC 9728) for the resource the agent guards: what a
 * real MCP client reads after a 401 to find the authorization server.
 */
export function protectedResourceMetadata(settings: JwtConfig): Record<string, unknown> {
  return {
    resource: settings.audience,
    authorization_servers: [settings.issuer],
    bearer_methods_supported: ['header'],
    resource_signing_alg_values_supported: [...JWT_ALGORITHMS],
  };
}

/** Where the metadata is served, path-aware as RFC 9728 §3.1 says (`/.well-known/oauth-protected-resource/mcp`). */
export function resourceMetadataUrl(settings: JwtConfig): URL {
  const resource = new URL(settings.audience);
  const path = resource.pathname === '/' ? '' : resource.pathname;
  return new URL(`/.well-known/oauth-protected-resource${path}`, resource.origin);
}

/** The paths the HTTP front answers with the metadata: the path-aware one and the root one. */
export function resourceMetadataPaths(settings: JwtConfig): Set<string> {
  return new Set([resourceMetadataUrl(settings).pathname, '/.well-known/oauth-protected-resource']);
}

/**
 * `WWW-Authenticate` for a 401 (RFC 6750 §3, RFC 9728 §5.1): where the metadata is, and for a
 * token that was presented, `error="invalid_token"` with the reason (never the token).
 */
export function wwwAuthenticate(settings: JwtConfig, error: AgentError | undefined): string {
  const parts = [`resource_metadata="${resourceMetadataUrl(settings).href}"`];
  if (error?.code === 'INVALID_TOKEN') {
    parts.unshift('error="invalid_token"', `error_description="${error.message.replace(/["\\]/g, "'")}"`);
  }
  return `Bearer ${parts.join(', ')}`;
}
