/**
 * The agent's one error catalogue. Every rejection a client can receive, on either front, comes
 * from here: a stable code, its HTTP status, a JSON-RPC code for the MCP and Copilot fronts, and
 * a message a client (or the person reading its log) can act on.
 *
 * HTTP body: `{"error": {"code", "message", "status", "retryAfterSeconds"?, ...details}}`.
 * MCP transports: a JSON-RPC error object with the same fields under `error.data`.
 */
import type { EndReason } from './sessions.js';

export interface ErrorDefinition {
  readonly code: string;
  /** HTTP status; `expired` means the policy's `expiredSessionStatus`. */
  readonly status: number | 'expired';
  readonly jsonRpcCode: number;
  /** What the client should do, appended to the message. */
  readonly hint: string;
}

function define<const C extends string>(code: C, status: number | 'expired', jsonRpcCode: number, hint: string) {
  return { code, status, jsonRpcCode, hint } as const satisfies ErrorDefinition;
}

/**
 * JSON-RPC codes. The agent's own refusals are in -31000..-31099, outside the range JSON-RPC
 * reserves (-32768..-32000), because MCP 2026-07-28 reserves -32020..-32099 for codes the
 * specification defines and forbids emitting any other code from it; -31xxx keeps the last two
 * digits the agent used before (-32010 became -31010). The exceptions are codes with a meaning
 * the peers already share: JSON-RPC's own -32600/-32601/-32602/-32603, and -32001, what the MCP SDK
 * and the Copilot CLI answer for "Session not found" / "authentication required", so clients
 * handle the agent's answer as they handle the server's.
 */
export const ERRORS = {
  /** A new session finds no free session slot on this instance, nor (in a fleet) on any other. */
  SESSION_LIMIT_REACHED: define('SESSION_LIMIT_REACHED', 429, -31010, 'back off and retry'),
  /** The instance already has `concurrencyPerInstance` requests in flight. */
  CONCURRENCY_LIMIT_REACHED: define('CONCURRENCY_LIMIT_REACHED', 429, -31011, 'back off and retry'),
  /** The principal already holds `sessionsPerPrincipal` sessions. */
  PRINCIPAL_QUOTA_REACHED: define('PRINCIPAL_QUOTA_REACHED', 429, -31012, 'end one of your sessions first'),
  /** The principal's tenant already holds `sessionsPerTenant` sessions. */
  TENANT_QUOTA_REACHED: define('TENANT_QUOTA_REACHED', 429, -31020, "end one of your tenant's sessions first"),
  /** The session ended (its lifetime or idle timeout passed, it was deleted, evicted, terminated or drained); `reason` says which. */
  SESSION_EXPIRED: define('SESSION_EXPIRED', 'expired', -32001, 'start a new session'),
  /** The session id was never seen here, or its owner was lost with its state. */
  SESSION_NOT_FOUND: define('SESSION_NOT_FOUND', 'expired', -32001, 'start a new session'),
  /** A request that needs a session id came without one. */
  SESSION_ID_REQUIRED: define('SESSION_ID_REQUIRED', 400, -32600, 'send the session id you were given'),
  /** The session id is not 1–128 visible ASCII characters. */
  INVALID_SESSION_ID: define('INVALID_SESSION_ID', 400, -32602, 'use 1-128 visible ASCII characters'),
  /** The session cookie names no live session, is malformed or was sent twice; the answer clears it. */
  INVALID_COOKIE: define('INVALID_COOKIE', 401, -32001, 'retry without the cookie to get a new one'),
  /** A call on an MCP transport (or WebSocket) the agent is not configured for. */
  WRONG_TRANSPORT: define('WRONG_TRANSPORT', 400, -32600, 'use the transport the agent is configured for'),
  /** No valid principal: a missing or malformed trusted header, or an unknown client token. */
  UNAUTHENTICATED: define('UNAUTHENTICATED', 401, -32001, 'present a valid token'),
  /**
   * JWT mode: the bearer token does not verify (signature, issuer, audience, expiry, algorithm,
   * size); `reason` says which. HTTP answers carry `WWW-Authenticate: Bearer error="invalid_token"`.
   */
  INVALID_TOKEN: define('INVALID_TOKEN', 401, -31070, 'get a new token from the authorization server'),
  /** JWT mode: the issuer's metadata or signing keys cannot be fetched, so no token can be verified. */
  TOKEN_KEYS_UNAVAILABLE: define('TOKEN_KEYS_UNAVAILABLE', 503, -31071, 'retry shortly'),
  /** The session belongs to another principal or tenant. */
  SESSION_FORBIDDEN: define('SESSION_FORBIDDEN', 403, -31013, 'use a session you created'),
  /** Copilot front: a method the agent does not forward (server-wide, host access or unknown). */
  METHOD_FORBIDDEN: define('METHOD_FORBIDDEN', 403, -31014, 'this method is not available through the agent'),
  /** Tenant isolation: the principal belongs to another tenant than the one this instance serves. */
  TENANT_FORBIDDEN: define('TENANT_FORBIDDEN', 403, -31021, "use your own tenant's instances"),
  /** A request carried the principal header from an address outside `--trusted-proxies`. */
  PRINCIPAL_SOURCE_UNTRUSTED: define(
    'PRINCIPAL_SOURCE_UNTRUSTED',
    403,
    -31023,
    'send the request through the authenticating proxy',
  ),
  /** The Host header is not one the agent serves (`--allowed-hosts`; DNS-rebinding protection). */
  HOST_FORBIDDEN: define('HOST_FORBIDDEN', 403, -31024, 'use a host name this service is published under'),
  /** A browser's Origin is not one `--allowed-origins` allows (DNS-rebinding protection). */
  ORIGIN_FORBIDDEN: define('ORIGIN_FORBIDDEN', 403, -31025, 'call it from an allowed origin'),
  /** The instance holds `limits.streamsPerInstance` open streams (listen, GET, SSE), or it drains. */
  STREAM_LIMIT_REACHED: define('STREAM_LIMIT_REACHED', 429, -31040, 'close a stream you no longer need, or retry'),
  /** The principal has its `limits.requestsPerPrincipal`, `tasksPerPrincipal` or `streamsPerPrincipal` in use. */
  PRINCIPAL_LIMIT_REACHED: define(
    'PRINCIPAL_LIMIT_REACHED',
    429,
    -31041,
    'wait for one of your requests, tasks or streams to end',
  ),
  /** The tenant has its `limits.requestsPerTenant`, `tasksPerTenant` or `streamsPerTenant` in use. */
  TENANT_LIMIT_REACHED: define(
    'TENANT_LIMIT_REACHED',
    429,
    -31042,
    "wait for one of your tenant's requests, tasks or streams to end",
  ),
  /** The instance serves `limits.toolConcurrency` calls of this tool (Mcp-Method + Mcp-Name) already. */
  TOOL_CONCURRENCY_REACHED: define('TOOL_CONCURRENCY_REACHED', 429, -31043, 'back off and retry'),
  /** Admin API: no live MCP task of that id in the fleet (never created, expired, or its instance is gone). */
  TASK_NOT_FOUND: define('TASK_NOT_FOUND', 404, -31044, 'list the live tasks with GET /admin/fleet/tasks'),
  /** Admin API: the task already reached a terminal status (completed, failed, cancelled); `status` says which. */
  TASK_FINISHED: define('TASK_FINISHED', 409, -31045, 'nothing to cancel'),
  /** Admin API: no open stream of that id on any live instance of the fleet. */
  STREAM_NOT_FOUND: define('STREAM_NOT_FOUND', 404, -31046, 'list the open streams with GET /admin/fleet/streams'),
  /** A collaborative session's write did not get the session's lock within `lockWaitSeconds`. */
  SESSION_BUSY: define('SESSION_BUSY', 409, -31015, 'retry after the current write finishes'),
  /** Copilot front: `session.create` for an id that already exists. */
  SESSION_EXISTS: define('SESSION_EXISTS', 409, -31022, 'resume it with session.resume'),
  /** The instance is shutting down and takes no new session. */
  DRAINING: define('DRAINING', 503, -31016, 'retry; another instance will take the session'),
  /**
   * Copilot front with `--app-state-dir`: the session's state could not be copied between the
   * shared volume and the app's directory (ADR 0019); the CLI is not asked to load it without it.
   */
  STATE_STAGING_FAILED: define('STATE_STAGING_FAILED', 503, -31080, 'retry shortly'),
  /**
   * Copilot front: a session load or options update asks for the CLI's cross-session store, which
   * would show the sessions of every user the CLI served (ADR 0024).
   */
  SESSION_STORE_FORBIDDEN: define(
    'SESSION_STORE_FORBIDDEN',
    403,
    -31081,
    'leave enableSessionStore unset or false and do not request the session-store capability',
  ),
  /**
   * Copilot front: a session load names its own `configDir`, which would keep the session's state
   * outside the directory the agent stages and clears between users (ADR 0024).
   */
  CONFIG_DIR_FORBIDDEN: define(
    'CONFIG_DIR_FORBIDDEN',
    403,
    -31082,
    "leave configDirectory unset (the CLI's directories are the instance's)",
  ),
  /** The fleet store (Redis) cannot be reached and `failOpen` is false. */
  STORE_UNAVAILABLE: define('STORE_UNAVAILABLE', 503, -31017, 'retry shortly'),
  /** The upstream refused or dropped the connection. */
  UPSTREAM_UNAVAILABLE: define('UPSTREAM_UNAVAILABLE', 502, -31018, 'retry shortly'),
  /** The upstream sent no response headers in time. */
  UPSTREAM_TIMEOUT: define('UPSTREAM_TIMEOUT', 504, -31019, 'retry shortly'),
  /** Copilot front: no successful `connect` within `--copilot-handshake-timeout-ms` of opening the connection. */
  HANDSHAKE_TIMEOUT: define(
    'HANDSHAKE_TIMEOUT',
    408,
    -31050,
    'connect (with your token) right after opening the connection',
  ),
  /** Copilot front: `--copilot-max-unauthenticated` connections are already waiting for their `connect`. */
  TOO_MANY_UNAUTHENTICATED: define('TOO_MANY_UNAUTHENTICATED', 503, -31051, 'retry shortly and connect at once'),
  /** A Copilot frame, or an HTTP request body, larger than the agent accepts (the limit is in the message). */
  PAYLOAD_TOO_LARGE: define('PAYLOAD_TOO_LARGE', 413, -31052, 'send less at once'),
  /** HTTP front: the request's header block is larger than `--http-max-header-bytes`. */
  HEADERS_TOO_LARGE: define('HEADERS_TOO_LARGE', 431, -31053, 'send fewer or shorter headers'),
  /** HTTP front: the headers (`--http-headers-timeout-ms`) or the whole request (`--http-request-timeout-ms`) did not arrive in time. */
  REQUEST_TIMEOUT: define('REQUEST_TIMEOUT', 408, -31054, 'send the whole request without pausing'),
  /** HTTP front: `CONNECT` (the agent is a reverse proxy, not a tunnel). */
  METHOD_NOT_ALLOWED: define(
    'METHOD_NOT_ALLOWED',
    405,
    -31055,
    'send the request to the service itself, not a CONNECT',
  ),
  /** A request the agent cannot forward (request target or header). */
  BAD_REQUEST: define('BAD_REQUEST', 400, -32600, 'fix the request'),
  /** No such path on the admin API. */
  NOT_FOUND: define('NOT_FOUND', 404, -32601, 'check the path'),
  /** An unexpected exception in the agent (logged with the request id); never an upstream problem. */
  INTERNAL_ERROR: define('INTERNAL_ERROR', 500, -32603, 'retry; if it persists, report it with the request id'),
} as const;

export type ErrorCode = keyof typeof ERRORS;

export interface AgentErrorOptions {
  /** Seconds the client should wait before retrying; sent as `Retry-After`. */
  retryAfterSeconds?: number;
  /** Extra fields for the body (never secrets). */
  details?: Record<string, unknown>;
}

/** A rejection decided by the agent. Fronts turn it into an HTTP response or a JSON-RPC error. */
export class AgentError extends Error {
  readonly code: ErrorCode;
  readonly retryAfterSeconds: number | undefined;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: AgentErrorOptions = {}) {
    super(message);
    this.name = 'AgentError';
    this.code = code;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.details = options.details ?? {};
  }

  get definition(): ErrorDefinition {
    return ERRORS[this.code];
  }

  /** The HTTP status, resolving `expired` to the policy's expired-session status. */
  status(expiredSessionStatus: number): number {
    const s = ERRORS[this.code].status;
    return s === 'expired' ? expiredSessionStatus : s;
  }

  /** The message with what to do next. */
  get fullMessage(): string {
    return `${this.message}: ${ERRORS[this.code].hint}`;
  }

  /** The JSON body of an HTTP rejection. */
  toHttpBody(expiredSessionStatus: number): { error: Record<string, unknown> } {
    const body: Record<string, unknown> = {
      code: this.code,
      message: this.fullMessage,
      status: this.status(expiredSessionStatus),
      ...this.details,
    };
    if (this.retryAfterSeconds !== undefined) body.retryAfterSeconds = this.retryAfterSeconds;
    return { error: body };
  }

  /** The JSON-RPC error object (`error` member of a response). */
  toJsonRpcError(expiredSessionStatus: number): { code: number; message: string; data: Record<string, unknown> } {
    const data: Record<string, unknown> = {
      code: this.code,
      status: this.status(expiredSessionStatus),
      ...this.details,
    };
    if (this.retryAfterSeconds !== undefined) data.retryAfterSeconds = this.retryAfterSeconds;
    return { code: ERRORS[this.code].jsonRpcCode, message: this.fullMessage, data };
  }
}

/**
 * SESSION_BUSY in one shape whichever front and whichever lock (in-process or Redis) refused, so
 * a client reads the same message and `data` fields everywhere.
 */
export function sessionBusy(sessionId: string, why: string, retryAfterSeconds: number | undefined): AgentError {
  return new AgentError('SESSION_BUSY', `session ${JSON.stringify(sessionId)} is busy (${why})`, {
    retryAfterSeconds: retryAfterSeconds ?? 1,
    details: { sessionId },
  });
}

/**
 * The answer for a session id the agent (and the fleet) knows nothing of: the MCP SDK's own
 * wording for an unknown `Mcp-Session-Id`, so clients that match on it re-initialize.
 */
export function sessionNotFound(): AgentError {
  return new AgentError('SESSION_NOT_FOUND', 'Session not found');
}

/** Why a session ended, as the client reads it after `Session expired: `. */
export const ENDED_MESSAGES: Readonly<Record<EndReason, string>> = {
  deleted: 'the session was deleted',
  'expired-lifetime': 'the session reached its lifetime',
  'expired-idle': 'the session was idle past its timeout',
  evicted: 'the session was evicted to make room',
  terminated: 'the session was terminated by an operator',
  drained: 'the instance that held the session shut down',
  'upstream-closed': 'the server behind the agent ended it',
  detached: 'the session was detached from this instance',
};

/**
 * The answer for a request naming a session id that ended (within the last session lifetime):
 * one shape whether this agent remembers the end itself or the fleet does (`agent/fleet`), so a
 * client gets the same status and body from every agent. `owner-lost` is the fleet's own reason
 * (its owner died with its state): the body an unknown id gets, as for the first request after it.
 */
export function sessionEndedError(reason: EndReason | 'owner-lost'): AgentError {
  if (reason === 'owner-lost') return sessionNotFound();
  return new AgentError('SESSION_EXPIRED', `Session expired: ${ENDED_MESSAGES[reason]}`, { details: { reason } });
}

/**
 * The answer for a session cookie that names a session which ended (within the last session
 * lifetime): always INVALID_COOKIE, whatever `expiredSessionStatus` says, so the client drops the
 * cookie (the front clears it) and gets a new one; the same from every agent of a fleet.
 */
export function cookieEndedError(reason: EndReason): AgentError {
  return new AgentError('INVALID_COOKIE', ENDED_MESSAGES[reason], { details: { reason } });
}
