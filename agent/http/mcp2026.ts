/**
 * MCP 2026-07-28 (stateless) requests as an intermediary sees them: whether a request is of the
 * modern era, which affinity key it names (a task id, a handle), the JSON-RPC id of its body, and
 * the spec's answer for an unknown task. Pure: no I/O.
 *
 * The agent leaves version negotiation to the server: a request that looks modern in any way — a
 * `Mcp-Method` header (2025 clients never send one), an `MCP-Protocol-Version` that is not a 2025
 * revision date, or a body whose `params._meta` names a protocol version — is passed to the
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
  if (headers['mcp-method'] !== undefined) return true;
  const version = one(headers, 'mcp-protocol-version');
  if (version === undefined) return false;
  // A 2025 revision date is the legacy era; any other value (a later date, v999.0.0) is for the
  // server to accept or answer with its supported versions.
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
