import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import {
  traceCarrierOf,
  traceContextOfMcpBody,
  validTraceparent,
  withoutTraceContext,
  withTraceContext,
} from '../../../agent/core/trace-context.js';
import { mayCarryMetaTrace } from '../../../agent/http/body.js';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const SPAN = '00f067aa0ba902b7';
const GOOD = `00-${TRACE}-${SPAN}-01`;

function call(meta: unknown): string {
  return JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', _meta: meta } });
}

describe('a traceparent from a message', () => {
  it('accepts the W3C form, and a later version with more fields', () => {
    expect(validTraceparent(GOOD)).toBe(GOOD);
    expect(validTraceparent(`01-${TRACE}-${SPAN}-01-future`)).toBe(`01-${TRACE}-${SPAN}-01-future`);
  });

  it.each([
    ['too short', `00-${TRACE.slice(1)}-${SPAN}-01`],
    ['too long a trace id', `00-${TRACE}0-${SPAN}-01`],
    ['upper-case hex', GOOD.toUpperCase()],
    ['not hex', `00-${TRACE.replace('a', 'g')}-${SPAN}-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['an all-zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['version 00 with more fields', `${GOOD}-extra`],
    ['surrounding spaces', ` ${GOOD} `],
    ['huge', `01-${TRACE}-${SPAN}-01-${'a'.repeat(100_000)}`],
    ['a number', 42],
    ['an object', { traceparent: GOOD }],
    ['null', null],
  ])('ignores %s', (_what, value) => {
    expect(validTraceparent(value)).toBeUndefined();
  });
});

describe("the trace context of an MCP body's params._meta", () => {
  it('reads traceparent and tracestate', () => {
    expect(traceContextOfMcpBody(call({ traceparent: GOOD, tracestate: 'congo=t61rcWkgMzE' }))).toEqual({
      traceparent: GOOD,
      tracestate: 'congo=t61rcWkgMzE',
    });
  });

  it('keeps a valid traceparent when only the tracestate is unusable', () => {
    expect(traceContextOfMcpBody(call({ traceparent: GOOD, tracestate: 'x'.repeat(600) }))).toEqual({
      traceparent: GOOD,
    });
    expect(traceContextOfMcpBody(call({ traceparent: GOOD, tracestate: 7 }))).toEqual({ traceparent: GOOD });
  });

  it('takes the first message of a batch that carries one', () => {
    const batch = JSON.stringify([
      { jsonrpc: '2.0', id: 1, method: 'ping' },
      { jsonrpc: '2.0', id: 2, method: 'tools/list', params: { _meta: { traceparent: GOOD } } },
    ]);
    expect(traceContextOfMcpBody(batch)).toEqual({ traceparent: GOOD });
  });

  it.each([
    ['no _meta', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} })],
    ['a traceparent outside _meta', JSON.stringify({ jsonrpc: '2.0', id: 1, params: { traceparent: GOOD } })],
    ['a tool argument named traceparent', JSON.stringify({ params: { arguments: { traceparent: GOOD } } })],
    ['a malformed traceparent', call({ traceparent: `00-${TRACE}-${SPAN}` })],
    ['a _meta that is an array', call([GOOD])],
    ['a body that is not JSON', `{"params":{"_meta":{"traceparent":"${GOOD}"`],
    ['JSON null', 'null'],
    ['an empty body', ''],
  ])('finds none in %s', (_what, body) => {
    expect(traceContextOfMcpBody(body)).toBeUndefined();
  });
});

describe('trace context in Copilot params', () => {
  it('reads the SDK fields, and replaces them without touching the rest', () => {
    const params = { sessionId: 's1', prompt: 'hi', traceparent: GOOD, tracestate: 'a=1' };
    expect(traceCarrierOf(params)).toEqual({ traceparent: GOOD, tracestate: 'a=1' });
    const mine = `00-${TRACE}-${'1'.repeat(16)}-01`;
    expect(withTraceContext(params, { traceparent: mine })).toEqual({
      sessionId: 's1',
      prompt: 'hi',
      traceparent: mine,
    });
    expect(params.traceparent).toBe(GOOD);
    expect(withTraceContext(undefined, { traceparent: mine, tracestate: 'b=2' })).toEqual({
      traceparent: mine,
      tracestate: 'b=2',
    });
    // What the agent replays for its own resume: the stored params without their old trace.
    const stored = { sessionId: 's1', model: 'm', traceparent: GOOD, tracestate: 'a=1' };
    expect(withoutTraceContext(stored)).toEqual({ sessionId: 's1', model: 'm' });
    expect(stored.traceparent).toBe(GOOD);
    expect(withoutTraceContext(undefined)).toEqual({});
  });
});

describe('which requests are read ahead for their _meta (tracing on)', () => {
  const req = (method: string, headers: Record<string, string>) => ({ method, headers }) as unknown as IncomingMessage;
  const json = { 'content-type': 'application/json', 'content-length': '120' };

  it('a small JSON POST to an MCP front, or with MCP headers elsewhere', () => {
    expect(mayCarryMetaTrace(req('POST', json), 1024, true)).toBe(true);
    expect(mayCarryMetaTrace(req('POST', { ...json, 'mcp-method': 'tools/call' }), 1024, false)).toBe(true);
  });

  it.each([
    ['a GET', req('GET', json), true],
    ['a request with a traceparent header', req('POST', { ...json, traceparent: GOOD }), true],
    ['a body larger than the limit', req('POST', { ...json, 'content-length': '2048' }), true],
    ['a chunked body', req('POST', { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }), true],
    ['an empty body', req('POST', { ...json, 'content-length': '0' }), true],
    ['a form', req('POST', { ...json, 'content-type': 'application/x-www-form-urlencoded' }), true],
    ['a non-MCP front without MCP headers', req('POST', json), false],
  ])('not %s', (_what, request, mcp) => {
    expect(mayCarryMetaTrace(request, 1024, mcp)).toBe(false);
  });
});
