/**
 * Reading the start of a request body, for the decisions that need it (whether a session-less MCP
 * POST is an `initialize`, a task request, a retryable forward) when the body gate is off
 * (`--http-body-gate-bytes 0`); with the gate, `body-gate.ts` answers the same peeks. Bounded.
 */
import type { IncomingMessage } from 'node:http';

export interface Peeked {
  /** What was read: the whole body when `complete`. */
  bytes: Buffer;
  /** False when the body is longer than the limit (the rest stays unread). */
  complete: boolean;
}

/** Reads the body up to `limit` bytes; undefined if the client went away first. */
export function readBodyUpTo(req: IncomingMessage, limit: number): Promise<Peeked | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (value: Peeked | undefined) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onClose);
      resolve(value);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) {
        req.pause();
        settle({ bytes: Buffer.concat(chunks), complete: false });
      }
    };
    const onEnd = () => settle({ bytes: Buffer.concat(chunks), complete: true });
    const onGone = () => settle(undefined);
    const onClose = () => {
      if (!req.complete) settle(undefined);
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onGone);
    req.once('close', onClose);
  });
}

/**
 * Tracing on only: whether to read a request's body before routing it, for the trace context its
 * MCP `params._meta` may carry (ADR 0026). Only a POST with no `traceparent` header (which would
 * win), a JSON body of a declared length within `limit` (so the read is whole and bounded), sent
 * to an MCP front or carrying MCP's request headers. Every other request streams as before.
 */
export function mayCarryMetaTrace(req: IncomingMessage, limit: number, mcpFront: boolean): boolean {
  const headers = req.headers;
  if (req.method !== 'POST' || headers.traceparent !== undefined) return false;
  if (!mcpFront && headers['mcp-method'] === undefined && headers['mcp-protocol-version'] === undefined) return false;
  const type = headers['content-type'];
  if (typeof type !== 'string' || !type.includes('json')) return false;
  const length = Number(headers['content-length']);
  return length > 0 && length <= limit;
}
