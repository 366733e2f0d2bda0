/**
 * W3C trace context carried inside a message rather than in HTTP headers: `params._meta` of an MCP
 * request (MCP 2026-07-28, "OpenTelemetry trace context"; SEP-414), `params` of the Copilot SDK's
 * `session.create`/`session.resume`/`session.send`, and the agent's own hop envelope. Pure: no I/O,
 * no OpenTelemetry import, so it costs nothing while tracing is off (nothing calls it then).
 *
 * Whatever a client writes there is untrusted: a value that is not a well-formed `traceparent`
 * (wrong length, not lower-case hex, all-zero ids, version ff, longer than any real one) is
 * ignored as if absent, never an error — the request goes on, in a trace of its own.
 */

/** The two W3C fields the agent continues a trace from (`baggage` is not read). */
export interface TraceCarrier {
  readonly traceparent: string;
  readonly tracestate?: string;
}

/** version-traceid-parentid-flags; a later version may append fields after a `-`. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-[\x21-\x7e]*)?$/;
/** Longer than any traceparent a tracer sends (55 characters for version 00). */
const MAX_TRACEPARENT = 256;
/** W3C: at most 32 members; 512 characters is what it asks every vendor to accept. */
const MAX_TRACESTATE = 512;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** The value, if it is a `traceparent` the W3C rules accept; undefined otherwise. */
export function validTraceparent(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > MAX_TRACEPARENT) return undefined;
  const m = TRACEPARENT.exec(value);
  if (!m) return undefined;
  const [, version, traceId, spanId, rest] = m;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return value;
}

/** The trace context of an object's `traceparent`/`tracestate` members (an invalid `tracestate` is dropped alone). */
export function traceCarrierOf(holder: unknown): TraceCarrier | undefined {
  if (typeof holder !== 'object' || holder === null || Array.isArray(holder)) return undefined;
  const fields = holder as { traceparent?: unknown; tracestate?: unknown };
  const traceparent = validTraceparent(fields.traceparent);
  if (traceparent === undefined) return undefined;
  const state = fields.tracestate;
  return typeof state === 'string' && state.length > 0 && state.length <= MAX_TRACESTATE
    ? { traceparent, tracestate: state }
    : { traceparent };
}

/**
 * The trace context in an MCP request body's `params._meta` (the first message of a batch that
 * carries one). Undefined for a body without one, or that is not JSON: the server answers that.
 */
export function traceContextOfMcpBody(body: string): TraceCarrier | undefined {
  // Most bodies name no trace: no parse for them.
  if (!body.includes('"traceparent"')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return undefined;
  }
  for (const message of Array.isArray(value) ? value : [value]) {
    const params = (message as { params?: unknown } | null)?.params;
    const meta = typeof params === 'object' && params !== null ? (params as { _meta?: unknown })._meta : undefined;
    const found = traceCarrierOf(meta);
    if (found) return found;
  }
  return undefined;
}

/** `params` without `traceparent`/`tracestate` (a copy; the client's own object is kept). */
export function withoutTraceContext(params: unknown): Record<string, unknown> {
  const base = typeof params === 'object' && params !== null && !Array.isArray(params) ? params : {};
  const { traceparent: _p, tracestate: _s, ...rest } = base as Record<string, unknown>;
  return rest;
}

/** `params` with `traceparent`/`tracestate` set to `context` (a copy; the client's own object is kept). */
export function withTraceContext(params: unknown, context: TraceCarrier): Record<string, unknown> {
  const rest = withoutTraceContext(params);
  return context.tracestate === undefined
    ? { ...rest, traceparent: context.traceparent }
    : { ...rest, traceparent: context.traceparent, tracestate: context.tracestate };
}
