/**
 * MCP 2026-07-28 (stateless) requests as an intermediary sees them: whether a request is of the
 * modern era, which affinity key it names (a task id, a handle), the JSON-RPC id of its body, and
 * the spec's answer for an unknown task. Pure: no I/O.
 *
 * The agent leaves version negotiation to the server: a request that looks modern — an
 * `MCP-Protocol-Version` that is not a 2025 revision date, a `Mcp-Method` header without a version
 * header, or a body whose `params._meta` names a protocol version — is passed to the
 * upstream as a stateless request, whose own 400 (-32022 with `data.supported`, or -32020 for
 * headers that disagree with the body) reaches the client unchanged. A stray `Mcp-Session-Id` on a
 * modern request is ignored, as the spec says.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { KeyRef } from '../routing/index.js';

/** MCP revisions from this date on have no `initialize` and no session id: every request stands alone. */
export const STATELESS_MCP_REVISION = '2026-07-28';
/** The `params._meta` key of a modern request's protocol version. */
export const PROTOCOL_VERSION_META = 'io.modelcontextprotocol/protocolVersion';
/** The `params._meta` key of a modern request's client capabilities. */
export const CLIENT_CAPABILITIES_META = 'io.modelcontextprotocol/clientCapabilities';
/** The Tasks extension's identifier. */
export const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';
/** The Tasks extension's methods whose `Mcp-Name` is the task id. */
export const TASK_METHODS: ReadonlySet<string> = new Set(['tasks/get', 'tasks/update', 'tasks/cancel']);
/** Task ids and handles the agent routes by: visible ASCII, 1–256 characters. */
const KEY = /^[\x21-\x7e]{1,256}$/;
const REVISION_DATE = /^\d{4}-\d{2}-\d{2}$/;

function one(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Whether the headers alone say the request is of the modern (2026-07-28 or later) era. */
export function isModernRequest(headers: IncomingHttpHeaders): boolean {
  const version = one(headers, 'mcp-protocol-version');
  // Without a version header, the 2026 routing header says it (2025 clients send none).
  if (version === undefined) return headers['mcp-method'] !== undefined;
  // A 2025 revision date is the legacy era — whatever else is sent (clients that speak both send
  // Mcp-Method on 2025 requests too); any other value (a later date, v999.0.0) is for the server
  // to accept or answer with its supported versions.
  return !REVISION_DATE.test(version) || version >= STATELESS_MCP_REVISION;
}

/** The affinity key a modern request names: a task id, or the policy's handle header. */
export function affinityKeyOf(headers: IncomingHttpHeaders, handleHeader: string | undefined): KeyRef | undefined {
  const method = one(headers, 'mcp-method');
  if (method !== undefined && TASK_METHODS.has(method)) {
    const name = one(headers, 'mcp-name');
    // Without a usable Mcp-Name the server answers the header–body mismatch itself.
    return name !== undefined && KEY.test(name) ? { kind: 'task', key: name } : undefined;
  }
  if (handleHeader === undefined) return undefined;
  const handle = one(headers, handleHeader);
  return handle !== undefined && KEY.test(handle) ? { kind: 'handle', key: handle } : undefined;
}

function parsed(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

/** Whether a JSON-RPC body (one message or a batch) carries the modern envelope (`params._meta` version). */
export function hasModernEnvelope(body: string): boolean {
  if (!body.includes(PROTOCOL_VERSION_META)) return false;
  const value = parsed(body);
  const messages = Array.isArray(value) ? value : [value];
  return messages.some((m) => {
    const meta = (m as { params?: { _meta?: Record<string, unknown> } } | null)?.params?._meta;
    return typeof meta === 'object' && meta !== null && meta[PROTOCOL_VERSION_META] !== undefined;
  });
}

/**
 * Whether the agent may answer this task request as an unknown task itself: a well-formed request
 * that the server would look the task up for — its method and task id equal to the `Mcp-Method`
 * and `Mcp-Name` headers, and the Tasks extension declared in its capabilities. Anything else gets
 * the server's own answer (-32020 for headers that disagree, -32021 for a client that did not
 * declare the extension), which the server checks before it looks for the task.
 */
export function isWellFormedTaskRequest(body: string, headers: IncomingHttpHeaders): boolean {
  const message = parsed(body) as
    | { method?: unknown; params?: { taskId?: unknown; _meta?: Record<string, unknown> } }
    | null
    | undefined;
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return false;
  if (message.method !== one(headers, 'mcp-method') || message.params?.taskId !== one(headers, 'mcp-name')) {
    return false;
  }
  const capabilities = message.params?._meta?.[CLIENT_CAPABILITIES_META] as
    | { extensions?: Record<string, unknown> }
    | undefined;
  return typeof capabilities?.extensions?.[TASKS_EXTENSION] === 'object';
}

/** The `id` of a JSON-RPC request body; null when there is none or the body does not parse. */
export function jsonRpcIdOf(body: string): string | number | null {
  const id = (parsed(body) as { id?: unknown } | null | undefined)?.id;
  return typeof id === 'string' || typeof id === 'number' ? id : null;
}

/**
 * The spec's answer for an invalid or nonexistent task id (Tasks extension, Protocol Errors: HTTP
 * 200, JSON-RPC -32602); a handle nobody holds for this caller gets the same code.
 */
export function unknownKeyBody(kind: KeyRef['kind'], id: string | number | null): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    error: {
      code: -32602,
      message: kind === 'task' ? 'Failed to retrieve task: Task not found' : 'Invalid params: unknown handle',
    },
  });
}
