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

/** The attributes the agent sets; `sessionfleet.*` are its own. */
export type SpanAttributes = Record<string, string | number | boolean>;

export interface RequestSpan {
  /** The `traceparent` (and `tracestate`) that continue this span in the next hop. */
  readonly context: { readonly traceparent: string; readonly tracestate?: string };
  set(attributes: SpanAttributes): void;
  /** The agent refused the request with this catalogue code. */
  refused(code: string): void;
  end(status: number, outcome: string): void;
}

/** A Copilot JSON-RPC call's span: ended when its response goes to the client. */
export interface CallSpan {
  /** `error`: the agent's catalogue code, or the JSON-RPC code the CLI answered with. */
  end(attributes: SpanAttributes, error?: string): void;
}

export interface Tracing {
  /** A server span for a request, continuing the caller's trace when its headers carry one. */
  startRequest(name: string, headers: IncomingHttpHeaders, attributes: SpanAttributes): RequestSpan;
  /** A server span for one JSON-RPC call on a Copilot connection (a root span: the protocol carries no trace context). */
  startCall(name: string, attributes: SpanAttributes): CallSpan;
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

  return {
    startRequest(name, headers, attributes) {
      const parent = propagator.extract(api.ROOT_CONTEXT, headers, api.defaultTextMapGetter);
      const span = tracer.startSpan(name, { kind: api.SpanKind.SERVER, attributes }, parent);
      const carrier: Record<string, string> = {};
      propagator.inject(api.trace.setSpan(api.ROOT_CONTEXT, span), carrier, api.defaultTextMapSetter);
      const context = {
        traceparent: carrier.traceparent ?? '',
        ...(carrier.tracestate === undefined ? {} : { tracestate: carrier.tracestate }),
      };
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
    startCall(name, attributes) {
      const span = tracer.startSpan(name, { kind: api.SpanKind.SERVER, attributes }, api.ROOT_CONTEXT);
      return {
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
