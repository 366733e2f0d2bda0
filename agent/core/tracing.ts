/**
 * OpenTelemetry traces of the agent: one server span per request the HTTP front takes (and per
 * JSON-RPC call on a Copilot connection, `startCall`), whose
 * W3C `traceparent` goes on to the upstream and to the agent a request is forwarded to, so one
 * client request is one trace across the fleet. Off unless the standard environment asks for it
 * (`OTEL_TRACES_EXPORTER=otlp`, or an `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`, and not
 * `OTEL_SDK_DISABLED=true`); the exporter reads the rest of the `OTEL_*` variables itself
 * (endpoint, headers, timeout, batch delay). When off, nothing is loaded and a request carries one
 * `undefined` field: the client's own `traceparent` reaches the upstream unchanged.
 *
 * Never recorded: tokens, cookies, header values other than the trace context. The principal is
 * recorded as the first 16 hex digits of its SHA-256 (`enduser.id`), enough to group one user's
 * requests without naming them.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { TraceCarrier } from './trace-context.js';

export type { TraceCarrier } from './trace-context.js';

/** The attributes the agent sets; `sessionfleet.*` are its own. */
export type SpanAttributes = Record<string, string | number | boolean>;

export interface RequestSpan {
  /** The `traceparent` (and `tracestate`) that continue this span in the next hop. */
  readonly context: TraceCarrier;
  set(attributes: SpanAttributes): void;
  /** The agent refused the request with this catalogue code. */
  refused(code: string): void;
  end(status: number, outcome: string): void;
}

/** A Copilot JSON-RPC call's span: ended when its response goes to the client. */
export interface CallSpan {
  /** The `traceparent` (and `tracestate`) that continue this span: to the CLI, or to the owner agent. */
  readonly context: TraceCarrier;
  /** `error`: the agent's catalogue code, or the JSON-RPC code the CLI answered with. */
  end(attributes: SpanAttributes, error?: string): void;
}

export interface Tracing {
  /**
   * A server span for a request, continuing the caller's trace: its `traceparent` header, else
   * `from.meta` (the trace context of an MCP body's `params._meta`). `from.startTime`: when the
   * request arrived (`performance.now()`), for a span started after its body was read.
   */
  startRequest(
    name: string,
    headers: IncomingHttpHeaders,
    attributes: SpanAttributes,
    from?: { meta?: TraceCarrier | undefined; startTime?: number },
  ): RequestSpan;
  /**
   * A server span for one JSON-RPC call on a Copilot connection: a child of `parent` (the first
   * agent's span on a hop, or the trace context the client put in the call's params), else a root.
   */
  startCall(name: string, attributes: SpanAttributes, parent?: TraceCarrier): CallSpan;
  /** Exports what is still buffered. */
  shutdown(): Promise<void>;
}

export function tracingRequested(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.toLowerCase() === 'true') return false;
  const exporter = env.OTEL_TRACES_EXPORTER?.toLowerCase();
  if (exporter !== undefined && exporter !== '') return exporter.split(',').includes('otlp');
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

export function hashedPrincipal(principal: string): string {
  return createHash('sha256').update(principal).digest('hex').slice(0, 16);
}

/** Loads the SDK and an OTLP/HTTP exporter when `tracingRequested(env)`; undefined otherwise. */
export async function createTracing(options: {
  env: NodeJS.ProcessEnv;
  instanceId: string;
  version: string;
}): Promise<Tracing | undefined> {
  if (!tracingRequested(options.env)) return undefined;
  const api = await import('@opentelemetry/api');
  const { W3CTraceContextPropagator } = await import('@opentelemetry/core');
  const { BasicTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
  const { resourceFromAttributes } = await import('@opentelemetry/resources');

  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': options.env.OTEL_SERVICE_NAME || 'sessionfleet-agent',
      'service.version': options.version,
      'service.instance.id': options.instanceId,
    }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  const tracer = provider.getTracer('sessionfleet-agent', options.version);
  const propagator = new W3CTraceContextPropagator();
  const contextOf = (span: import('@opentelemetry/api').Span): TraceCarrier => {
    const carrier: Record<string, string> = {};
    propagator.inject(api.trace.setSpan(api.ROOT_CONTEXT, span), carrier, api.defaultTextMapSetter);
    return {
      traceparent: carrier.traceparent ?? '',
      ...(carrier.tracestate === undefined ? {} : { tracestate: carrier.tracestate }),
    };
  };

  return {
    startRequest(name, headers, attributes, from) {
      // The HTTP hop's own header wins: it is the nearer parent (another agent, a gateway).
      const meta = headers.traceparent === undefined ? from?.meta : undefined;
      const parent = propagator.extract(api.ROOT_CONTEXT, meta ?? headers, api.defaultTextMapGetter);
      const span = tracer.startSpan(
        name,
        {
          kind: api.SpanKind.SERVER,
          attributes: meta ? { ...attributes, 'sessionfleet.trace_parent': 'mcp-meta' } : attributes,
          ...(from?.startTime === undefined ? {} : { startTime: from.startTime }),
        },
        parent,
      );
      const context = contextOf(span);
      return {
        context,
        set: (more) => void span.setAttributes(more),
        refused: (code) => {
          span.setAttribute('sessionfleet.error_code', code);
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: code });
        },
        end: (status, outcome) => {
          span.setAttributes({ 'http.response.status_code': status, 'sessionfleet.outcome': outcome });
          if (status >= 500 || outcome === 'upstream-error') span.setStatus({ code: api.SpanStatusCode.ERROR });
          span.end();
        },
      };
    },
    startCall(name, attributes, from) {
      const parent = from ? propagator.extract(api.ROOT_CONTEXT, from, api.defaultTextMapGetter) : api.ROOT_CONTEXT;
      const span = tracer.startSpan(name, { kind: api.SpanKind.SERVER, attributes }, parent);
      let context: TraceCarrier | undefined;
      return {
        get context() {
          context ??= contextOf(span);
          return context;
        },
        end: (more, error) => {
          span.setAttributes(more);
          if (error !== undefined) {
            span.setAttribute('sessionfleet.error_code', error);
            span.setStatus({ code: api.SpanStatusCode.ERROR, message: error });
          }
          span.end();
        },
      };
    },
    shutdown: () => provider.shutdown(),
  };
}
