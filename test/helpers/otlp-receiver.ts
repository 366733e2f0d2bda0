/**
 * An OTLP/HTTP trace receiver on loopback for tests: it decodes what the agents' exporters send
 * (OTLP JSON) into flat spans with hex ids, the attributes as plain values and the exporting
 * process's `service.instance.id`. Point an agent at it with `OTEL_EXPORTER_OTLP_ENDPOINT: url`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: Record<string, unknown>;
  /** The exporter's `service.instance.id` (the agent's `--instance-id`). */
  instance: string;
  service: string;
}

export interface OtlpReceiver {
  readonly url: string;
  /** Every span received so far, in arrival order. */
  readonly spans: ExportedSpan[];
  close(): Promise<void>;
}

/** OTLP JSON carries ids as hex (or base64 in some encoders): hex either way. */
function hex(id: unknown): string {
  const text = String(id ?? '');
  return /^[0-9a-f]*$/i.test(text) ? text.toLowerCase() : Buffer.from(text, 'base64').toString('hex');
}

function value(v: Record<string, unknown>): unknown {
  return v.stringValue ?? v.boolValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.doubleValue);
}

type Attributes = Array<{ key: string; value: Record<string, unknown> }>;

function attribute(attributes: Attributes, key: string): string {
  return String(value(attributes.find((a) => a.key === key)?.value ?? {}));
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ExportedSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: {
        resourceSpans?: Array<{
          resource: { attributes: Attributes };
          scopeSpans: Array<{ spans: Array<Record<string, unknown>> }>;
        }>;
      } = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
      } catch {
        // Not OTLP JSON (a protobuf exporter): nothing this receiver can read.
      }
      for (const rs of body.resourceSpans ?? []) {
        const instance = attribute(rs.resource.attributes, 'service.instance.id');
        const service = attribute(rs.resource.attributes, 'service.name');
        for (const ss of rs.scopeSpans)
          for (const span of ss.spans)
            spans.push({
              traceId: hex(span.traceId),
              spanId: hex(span.spanId),
              ...(span.parentSpanId ? { parentSpanId: hex(span.parentSpanId) } : {}),
              name: String(span.name),
              attributes: Object.fromEntries(
                ((span.attributes ?? []) as Attributes).map((a) => [a.key, value(a.value)]),
              ),
              instance,
              service,
            });
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
