/**
 * The JSON-RPC 2.0 shapes the Copilot CLI and `@github/copilot-sdk` exchange, and how to tell
 * them apart. The CLI never sends batches; neither does the SDK.
 */

export type JsonRpcId = number | string;

export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export interface JsonRpcRequest {
  jsonrpc: '2.0';
  id: JsonRpcId;
  method: string;
  params?: unknown;
}

export interface JsonRpcNotification {
  jsonrpc: '2.0';
  method: string;
  params?: unknown;
}

export interface JsonRpcResponse {
  jsonrpc: '2.0';
  id: JsonRpcId | null;
  result?: unknown;
  error?: JsonRpcErrorObject;
}

export type JsonRpcMessage =
  | { kind: 'request'; message: JsonRpcRequest }
  | { kind: 'notification'; message: JsonRpcNotification }
  | { kind: 'response'; message: JsonRpcResponse }
  | { kind: 'invalid'; reason: string };

function isId(value: unknown): value is JsonRpcId {
  return (typeof value === 'number' && Number.isFinite(value)) || typeof value === 'string';
}

/** Classifies a parsed JSON value. */
export function classify(value: unknown): JsonRpcMessage {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { kind: 'invalid', reason: Array.isArray(value) ? 'batches are not supported' : 'not a JSON object' };
  }
  const m = value as Record<string, unknown>;
  if (typeof m.method === 'string') {
    if (m.id === undefined) return { kind: 'notification', message: m as unknown as JsonRpcNotification };
    if (isId(m.id)) return { kind: 'request', message: m as unknown as JsonRpcRequest };
    return { kind: 'invalid', reason: 'request id must be a number or a string' };
  }
  if (m.method !== undefined) return { kind: 'invalid', reason: 'method must be a string' };
  if ((isId(m.id) || m.id === null) && ('result' in m || 'error' in m)) {
    return { kind: 'response', message: m as unknown as JsonRpcResponse };
  }
  return { kind: 'invalid', reason: 'neither a request, a notification nor a response' };
}

/** `params` as an object, or an empty one (the SDK always sends an object). */
export function paramsOf(message: { params?: unknown }): Record<string, unknown> {
  const p = message.params;
  return typeof p === 'object' && p !== null && !Array.isArray(p) ? (p as Record<string, unknown>) : {};
}

/** The error a response carries, when it is one. */
export class JsonRpcError extends Error {
  readonly code: number;
  readonly data: unknown;
  constructor(error: JsonRpcErrorObject) {
    super(error.message);
    this.name = 'JsonRpcError';
    this.code = error.code;
    this.data = error.data;
  }
}
