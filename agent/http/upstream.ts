/**
 * The connection pool to the instance, what its failures mean to a client (never a 500: the
 * agent is fine, the instance is not), and the DELETE that frees an MCP session upstream when the
 * agent ends it.
 */
import { Pool } from 'undici';
import { AgentError } from '../core/errors.js';
import { HTTP_FRONT_DEFAULTS, type HttpFrontSettings } from './options.js';

/**
 * A pool to the instance. The front keeps two: one for requests, one for the requests that open a
 * long-lived stream (a GET event stream, an MCP 2026 `subscriptions/listen`). undici's `Pool`
 * walks its clients on every dispatch to find a free one, and an open stream keeps its client
 * busy: with 5,000 streams in the one pool every request walked 5,000 clients (issue 18 §3).
 * Apart, a request walks only the connections requests use; a stream opening walks the streams.
 */
export function createUpstreamPool(settings: HttpFrontSettings): Pool {
  return new Pool(settings.upstreamOrigin, {
    connect: { timeout: settings.upstreamConnectTimeoutMs },
    headersTimeout: settings.upstreamHeadersTimeoutMs,
    // Streams (SSE, long polls) may be silent for as long as they like; their session's
    // lifetime bounds them.
    bodyTimeout: 0,
    keepAliveTimeout: 4_000,
  });
}

/** A request the client sent that undici refuses to forward (it checks more than Node's parser). */
export function isClientFault(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return (
    code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED' || code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH'
  );
}

/** What an upstream failure tells the client. */
export function upstreamError(
  error: unknown,
  settings: Pick<HttpFrontSettings, 'upstreamHeadersTimeoutMs'>,
): AgentError {
  const code = String((error as { code?: unknown }).code ?? (error as Error).name ?? 'unknown');
  if (isClientFault(error)) {
    return new AgentError('BAD_REQUEST', `the request cannot be forwarded: ${(error as Error).message}`);
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') {
    const what =
      code === 'UND_ERR_HEADERS_TIMEOUT'
        ? `answer within ${settings.upstreamHeadersTimeoutMs / 1000}s`
        : 'accept a connection in time';
    return new AgentError('UPSTREAM_TIMEOUT', `the instance behind this agent did not ${what}`, {
      retryAfterSeconds: HTTP_FRONT_DEFAULTS.retryAfterSeconds,
      details: { cause: code },
    });
  }
  return new AgentError('UPSTREAM_UNAVAILABLE', `the instance behind this agent is not answering (${code})`, {
    retryAfterSeconds: HTTP_FRONT_DEFAULTS.retryAfterSeconds,
    details: { cause: code },
  });
}

/**
 * Ends an MCP Streamable HTTP session on the server (`DELETE` with its `Mcp-Session-Id`), best
 * effort: the agent has already ended it, this only lets the server free its state early.
 */
export async function deleteUpstreamSession(
  pool: Pool,
  settings: HttpFrontSettings,
  session: { id: string; path: string; protocolVersion: string | undefined },
): Promise<number> {
  const headers: Record<string, string> = {
    host: settings.upstreamHost,
    'mcp-session-id': session.id,
    'user-agent': 'sessionfleet-agent',
  };
  if (session.protocolVersion) headers['mcp-protocol-version'] = session.protocolVersion;
  const response = await pool.request({
    method: 'DELETE',
    path: session.path,
    headers,
    signal: AbortSignal.timeout(settings.upstreamDeleteTimeoutMs),
  });
  await response.body.dump();
  return response.statusCode;
}

/**
 * One Tasks-extension request about `task` (`tasks/get`, `tasks/cancel`) sent to the server as
 * the agent itself — for the admin kill switches. Resolves with the HTTP status and the JSON-RPC
 * answer (undefined when the body was not one).
 */
export async function upstreamTaskCall(
  pool: Pool,
  settings: HttpFrontSettings,
  task: { id: string; path: string },
  method: 'tasks/get' | 'tasks/cancel',
): Promise<{
  status: number;
  answer: { result?: Record<string, unknown>; error?: { message?: unknown } } | undefined;
}> {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: `sessionfleet-${method === 'tasks/get' ? 'get' : 'cancel'}-${task.id}`,
    method,
    params: {
      taskId: task.id,
      _meta: {
        'io.modelcontextprotocol/protocolVersion': '2026-07-28',
        'io.modelcontextprotocol/clientInfo': { name: 'sessionfleet-agent', version: '1' },
        'io.modelcontextprotocol/clientCapabilities': { extensions: { 'io.modelcontextprotocol/tasks': {} } },
      },
    },
  });
  const response = await pool.request({
    method: 'POST',
    path: task.path,
    headers: {
      host: settings.upstreamHost,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': method,
      'mcp-name': task.id,
      'user-agent': 'sessionfleet-agent',
    },
    body,
    signal: AbortSignal.timeout(settings.upstreamDeleteTimeoutMs),
  });
  const text = await response.body.text();
  return { status: response.statusCode, answer: jsonRpcAnswer(text) };
}

/** The JSON-RPC answer of a JSON body, or of the last `data:` line of an event stream. */
function jsonRpcAnswer(text: string): { result?: Record<string, unknown>; error?: { message?: unknown } } | undefined {
  const candidates = text.trimStart().startsWith('{')
    ? [text]
    : text
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5))
        .reverse();
  for (const candidate of candidates) {
    try {
      const value = JSON.parse(candidate) as Record<string, unknown>;
      if (value && typeof value === 'object' && ('result' in value || 'error' in value)) {
        return value as { result?: Record<string, unknown>; error?: { message?: unknown } };
      }
    } catch {}
  }
  return undefined;
}

/**
 * Cancels an MCP 2026 task on the server (`tasks/cancel`, Tasks extension), as the agent itself:
 * the admin kill switch for a principal's tasks. True when the server acknowledged it (HTTP 200
 * and a JSON-RPC result).
 */
export async function cancelUpstreamTask(
  pool: Pool,
  settings: HttpFrontSettings,
  task: { id: string; path: string },
): Promise<boolean> {
  const { status, answer } = await upstreamTaskCall(pool, settings, task, 'tasks/cancel');
  return status === 200 && answer?.result !== undefined;
}

/** What an MCP server answers for an id it does not hold: 404 with a JSON-RPC error (SDK: -32001). */
function isSessionNotFound(status: number, text: string): boolean {
  if (status !== 404) return false;
  try {
    const body = JSON.parse(text) as { jsonrpc?: unknown; error?: unknown };
    return body.jsonrpc === '2.0' && typeof body.error === 'object' && body.error !== null;
  } catch {
    return false;
  }
}

/**
 * Asks an MCP Streamable HTTP server whether it still holds a session, without side effects: a
 * JSON-RPC `ping` (which every MCP server answers) with its `Mcp-Session-Id` (ADR 0022). `gone`
 * only for the server's own "not found" (404 with a JSON-RPC error): a 404 from a wrong path or
 * anything else is no usable answer.
 */
export async function pingUpstreamSession(
  pool: Pool,
  settings: HttpFrontSettings,
  session: { id: string; path: string },
  signal: AbortSignal,
): Promise<'held' | 'gone' | 'unanswered'> {
  const response = await pool.request({
    method: 'POST',
    path: session.path,
    headers: {
      host: settings.upstreamHost,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-session-id': session.id,
      'user-agent': 'sessionfleet-agent',
    },
    body: '{"jsonrpc":"2.0","id":"sessionfleet-reconcile","method":"ping"}',
    signal: AbortSignal.any([signal, AbortSignal.timeout(settings.upstreamDeleteTimeoutMs)]),
  });
  if (response.statusCode >= 200 && response.statusCode < 300) {
    await response.body.dump();
    return 'held';
  }
  const text = await response.body.text();
  return isSessionNotFound(response.statusCode, text.slice(0, 4096)) ? 'gone' : 'unanswered';
}
