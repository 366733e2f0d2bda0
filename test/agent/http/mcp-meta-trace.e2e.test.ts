/**
 * MCP 2026-07-28 trace context in `params._meta` (ADR 0026), with real processes: an OTLP/HTTP
 * receiver in this test, two agents of one fleet (the run's Redis) under session isolation — so a
 * principal's 2026 requests are pinned to one instance and a request entering the other agent is
 * forwarded — each in front of its own SDK v2 server, and the SDK v2 client, which sends no
 * `traceparent` header but passes the `_meta` the test gives it.
 *
 * What must hold: the entry agent's span continues the trace `_meta` names; the owner's span is
 * a child of the entry agent's (the hop's header wins over `_meta`); the server gets the owner's
 * span in the `traceparent` header and the client's `_meta` unchanged in the body. A malformed
 * `_meta.traceparent` is ignored — a root span, the server's own answer, never a 500. With
 * tracing off the body and headers reach the server as the client sent them.
 */
import { randomBytes } from 'node:crypto';
import { Client, StreamableHTTPClientTransport, TRACEPARENT_META_KEY } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentProcess, spawnAgent, stopAll } from '../../helpers/http-agent-process.js';
import { type McpV2Upstream, startMcpV2Upstream } from '../../helpers/mcp-v2-upstream.js';
import { type ExportedSpan, type OtlpReceiver, startOtlpReceiver } from '../../helpers/otlp-receiver.js';
import { spawnMembers, waitFor } from '../fleet/helpers.js';

const MODERN = '2026-07-28';
let receiver: OtlpReceiver;
const upstreams = {} as Record<'a' | 'b' | 'off', McpV2Upstream>;
let agents: Record<'a' | 'b', AgentProcess>;
let untraced: AgentProcess;
const clients: Client[] = [];

const ids = () => ({ trace: randomBytes(16).toString('hex'), span: randomBytes(8).toString('hex') });
const traceparent = (t: { trace: string; span: string }) => `00-${t.trace}-${t.span}-01`;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  for (const id of ['a', 'b', 'off'] as const) upstreams[id] = await startMcpV2Upstream();
  ({ agents } = await spawnMembers({
    ids: ['a', 'b'] as const,
    policy: {
      affinity: { type: 'mcp-streamable-http' },
      isolation: 'session',
      maxInstances: 2,
      placementWaitSeconds: 0,
    },
    upstream: (id) => upstreams[id].url,
    redisUrl: inject('redisUrl'),
    adminToken: 'admin-token-meta-trace-41c9',
    inOrder: true,
    extraArgs: ['--principal-header', 'x-user'],
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '50' },
  }));
  untraced = await spawnAgent({
    policy: { affinity: { type: 'mcp-streamable-http' } },
    upstream: upstreams.off.url,
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_TRACES_EXPORTER: '' },
  });
  // alice's 2026 requests are pinned to a: her first one enters there.
  await (await clientOf(agents.a, 'alice')).callTool({ name: 'echo', arguments: {} });
}, 60_000);

afterAll(async () => {
  for (const c of clients.splice(0)) await c.close().catch(() => {});
  await stopAll();
  await Promise.all(Object.values(upstreams).map((u) => u.close()));
  await receiver.close();
});

async function clientOf(agent: AgentProcess, user: string): Promise<Client> {
  const client = new Client({ name: `meta-trace-${user}`, version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
  clients.push(client);
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${agent.url}/mcp`), { requestInit: { headers: { 'x-user': user } } }),
  );
  return client;
}

/** A raw 2026 `tools/call echo` whose `_meta` carries `meta` besides the required fields. */
function rawCall(agent: AgentProcess, meta: Record<string, unknown>, headers: Record<string, string> = {}) {
  return fetch(`${agent.url}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': 'tools/call',
      'mcp-name': 'echo',
      'x-user': 'alice',
      ...headers,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: {
        name: 'echo',
        arguments: {},
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientCapabilities': {},
          ...meta,
        },
      },
    }),
  });
}

/** The last `tools/call` the server got: its `traceparent` header and its body's `_meta.traceparent`. */
function lastCall(upstream: McpV2Upstream): { header: string | undefined; meta: unknown; body: string } {
  const last = [...upstream.received].reverse().find((r) => r.body.includes('"tools/call"'))!;
  const body = JSON.parse(last.body) as { params: { _meta: Record<string, unknown> } };
  return { header: last.traceparent, meta: body.params._meta.traceparent, body: last.body };
}

/** The span whose id the server got in the `traceparent` header. */
function spanNamedBy(header: string | undefined): Promise<ExportedSpan> {
  const [, trace, span] = (header ?? '').split('-');
  return waitFor('the span the server was handed', () =>
    receiver.spans.find((s) => s.traceId === trace && s.spanId === span),
  );
}

describe('MCP 2026 trace context in params._meta', () => {
  it("continues the trace the SDK client's _meta names, across the hop, and leaves the body's _meta alone", async () => {
    const client = await clientOf(agents.b, 'alice');
    const caller = ids();
    const result = await client.callTool({
      name: 'echo',
      arguments: {},
      _meta: { [TRACEPARENT_META_KEY]: traceparent(caller), tracestate: 'congo=t61rcWkgMzE' },
    });
    expect(result.content).toEqual([{ type: 'text', text: 'echo' }]);

    const reached = lastCall(upstreams.a);
    // Pinned to a: b forwarded it; the server was handed a's span, and the client's _meta as sent.
    expect(reached.meta).toBe(traceparent(caller));
    expect(JSON.parse(reached.body).params._meta.tracestate).toBe('congo=t61rcWkgMzE');
    const onA = await spanNamedBy(reached.header);
    expect(onA.instance).toBe('a');
    const onB = await waitFor('b span', () => receiver.spans.find((s) => s.spanId === onA.parentSpanId));
    expect(onB.instance).toBe('b');
    expect(onB.traceId).toBe(caller.trace);
    expect(onB.parentSpanId).toBe(caller.span);
    expect(onB.attributes).toMatchObject({
      'sessionfleet.trace_parent': 'mcp-meta',
      'sessionfleet.decision': 'forward',
      'sessionfleet.owner': 'a',
    });
    // a's parent came from b's header, not from _meta.
    expect(onA.attributes['sessionfleet.trace_parent']).toBeUndefined();
    expect(onA.attributes).toMatchObject({ 'sessionfleet.hop': true, 'http.response.status_code': 200 });
  });

  it('lets a traceparent header win over _meta', async () => {
    const header = ids();
    const meta = ids();
    const answer = await rawCall(agents.a, { traceparent: traceparent(meta) }, { traceparent: traceparent(header) });
    expect(answer.status).toBe(200);
    const span = await spanNamedBy(lastCall(upstreams.a).header);
    expect(span.traceId).toBe(header.trace);
    expect(span.parentSpanId).toBe(header.span);
    expect(lastCall(upstreams.a).meta).toBe(traceparent(meta));
  });

  it.each([
    ['a wrong length', (t: { trace: string; span: string }) => `00-${t.trace.slice(2)}-${t.span}-01`],
    ['non-hex digits', (t: { trace: string; span: string }) => `00-${t.trace.slice(1)}z-${t.span}-01`],
    ['upper-case hex', (t: { trace: string; span: string }) => traceparent(t).toUpperCase()],
    ['an all-zero trace id', (t: { trace: string; span: string }) => `00-${'0'.repeat(32)}-${t.span}-01`],
    ['a huge value', (t: { trace: string; span: string }) => `01-${t.trace}-${t.span}-01-${'f'.repeat(200_000)}`],
    ['a number', () => 4711],
    ['an object', (t: { trace: string; span: string }) => ({ traceparent: traceparent(t) })],
  ])('ignores a _meta.traceparent with %s: a root span, the server answers, never a 500', async (_what, make) => {
    const bad = ids();
    const value = make(bad);
    const answer = await rawCall(agents.a, { traceparent: value });
    expect(answer.status).toBe(200);
    expect(((await answer.text()).match(/"text":"echo"/) ?? []).length).toBe(1);
    const reached = lastCall(upstreams.a);
    // The body went on as sent, malformed value included.
    expect(reached.meta).toEqual(value);
    const span = await spanNamedBy(reached.header);
    expect(span.parentSpanId).toBeUndefined();
    expect(span.traceId).not.toBe(bad.trace);
    expect(span.attributes['sessionfleet.trace_parent']).toBeUndefined();
  });

  it('passes a body that is not JSON to the server, whose answer the client gets', async () => {
    const answer = await fetch(`${agents.a.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': MODERN,
        'mcp-method': 'tools/call',
        'mcp-name': 'echo',
        'x-user': 'alice',
      },
      body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"traceparent":"${traceparent(ids())}"`,
    });
    expect(answer.status).toBeGreaterThanOrEqual(400);
    expect(answer.status).toBeLessThan(500);
  });

  it('with tracing off, reads nothing ahead and adds no header: the server gets what the client sent', async () => {
    const caller = ids();
    const answer = await rawCall(untraced, { traceparent: traceparent(caller) });
    expect(answer.status).toBe(200);
    const reached = lastCall(upstreams.off);
    expect(reached.header).toBeUndefined();
    expect(reached.meta).toBe(traceparent(caller));
    expect(receiver.spans.some((s) => s.traceId === caller.trace)).toBe(false);
  });
});
