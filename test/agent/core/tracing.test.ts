import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { createTracing, hashedPrincipal, tracingRequested } from '../../../agent/core/tracing.js';
import { forwardedRequestHeaders } from '../../../agent/http/headers.js';

describe('when traces are on', () => {
  it.each([
    [{}, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }, true],
    [{ OTEL_TRACES_EXPORTER: 'otlp' }, true],
    [{ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, false],
    [{ OTEL_TRACES_EXPORTER: 'console,otlp' }, true],
    [{ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' }, false],
  ])('%j → %s', (env, on) => {
    expect(tracingRequested(env)).toBe(on);
  });

  it('loads nothing and gives no tracer when off', async () => {
    expect(await createTracing({ env: {}, instanceId: 'a', version: '0' })).toBeUndefined();
  });

  it('names a principal by a short hash, never in clear', () => {
    expect(hashedPrincipal('alice')).toMatch(/^[0-9a-f]{16}$/);
    expect(hashedPrincipal('alice')).not.toBe(hashedPrincipal('bob'));
  });
});

describe("the upstream's trace context", () => {
  const req = {
    rawHeaders: ['Traceparent', '00-aaaa-bbbb-01', 'tracestate', 'vendor=1', 'x-other', '1'],
    headers: { traceparent: '00-aaaa-bbbb-01', tracestate: 'vendor=1', 'x-other': '1' },
    socket: { remoteAddress: '127.0.0.1' },
  } as unknown as IncomingMessage;

  it("passes the client's through untouched when tracing is off", () => {
    const headers = forwardedRequestHeaders(req, { upstreamHost: 'up', requestId: 'r' });
    expect(headers.slice(0, 4)).toEqual(['Traceparent', '00-aaaa-bbbb-01', 'tracestate', 'vendor=1']);
  });

  it("replaces the client's with the agent's span when tracing is on", () => {
    const headers = forwardedRequestHeaders(req, {
      upstreamHost: 'up',
      requestId: 'r',
      trace: { traceparent: '00-aaaa-cccc-01' },
    });
    const names = headers.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names.filter((n) => n === 'traceparent')).toHaveLength(1);
    expect(names).not.toContain('tracestate');
    expect(headers[headers.indexOf('traceparent') + 1]).toBe('00-aaaa-cccc-01');
  });
});
