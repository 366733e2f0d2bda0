/**
 * OpenTelemetry traces across a fleet, with real processes: an OTLP/HTTP receiver in this test
 * (it decodes the exporter's JSON), two agents with the run's Redis, each in front of its own
 * recording service, and a client request that carries its own `traceparent`. The request for a
 * session placed on agent a is sent to agent b: b forwards it to a, a to its service. One trace:
 * the client's span → b's span → a's span → the service's `traceparent`, with each agent's
 * routing decision on its span. And with no OTEL_* variables the client's `traceparent` reaches
 * the service untouched and nothing is exported.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startCopilotAgent } from '../../helpers/copilot-agent.js';
import { startCopilotCli } from '../../helpers/copilot-cli.js';
import { openRawClient } from '../../helpers/copilot-rpc.js';
import { stopAll } from '../../helpers/http-agent-process.js';
import { type OtlpReceiver, startOtlpReceiver } from '../../helpers/otlp-receiver.js';
import { spawnMembers, waitFor } from '../fleet/helpers.js';
import { startUpstream, type Upstream } from './fixtures/upstream.js';

let receiver: OtlpReceiver;
let receiverUrl: string;
let spans: OtlpReceiver['spans'];
const services = {} as Record<'a' | 'b', Upstream>;
let agents: Awaited<ReturnType<typeof spawnMembers<'a' | 'b'>>>['agents'];

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  receiverUrl = receiver.url;
  spans = receiver.spans;
  services.a = await startUpstream();
  services.b = await startUpstream();
  ({ agents } = await spawnMembers({
    ids: ['a', 'b'] as const,
    policy: { affinity: { type: 'header', headerName: 'x-session' }, sessionsPerInstance: 5, maxInstances: 2 },
    upstream: (id) => services[id].url,
    redisUrl: inject('redisUrl'),
    adminToken: 'admin-token-tracing-7f3a',
    inOrder: true,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiverUrl,
      OTEL_BSP_SCHEDULE_DELAY: '50',
      OTEL_SERVICE_NAME: 'sessionfleet-agent-under-test',
    },
  }));
}, 60_000);

afterAll(async () => {
  await stopAll();
  await Promise.all(Object.values(services).map((s) => s.close()));
  await receiver.close();
});

const traceparent = (traceId: string, spanId: string) => `00-${traceId}-${spanId}-01`;

describe('traces across two agents', () => {
  it('makes one trace of a request that agent b forwards to the owner a, and hands it on to the service', async () => {
    // Placed on a (a fills itself first): created through a.
    const created = await fetch(`${agents.a.url}/echo`, { headers: { 'x-session': 'traced-1' } });
    expect(created.status).toBe(200);
    const before = services.a.received.length;

    const clientTrace = randomBytes(16).toString('hex');
    const clientSpan = randomBytes(8).toString('hex');
    const answer = await fetch(`${agents.b.url}/echo?token=secret-query`, {
      headers: {
        'x-session': 'traced-1',
        traceparent: traceparent(clientTrace, clientSpan),
        authorization: 'Bearer never-in-a-span',
      },
    });
    expect(answer.status).toBe(200);
    // The owner's service got it, not b's.
    const reached = services.a.received.slice(before).find((r) => r.path === '/echo')!;
    expect(reached).toBeDefined();

    const ofTrace = await waitFor('the two agents spans', () => {
      const found = spans.filter((s) => s.traceId === clientTrace);
      return found.length >= 2 ? found : undefined;
    });
    const onB = ofTrace.find((s) => s.instance === 'b')!;
    const onA = ofTrace.find((s) => s.instance === 'a')!;
    // b's span continues the client's; a's continues b's; the service got a's.
    expect(onB.parentSpanId).toBe(clientSpan);
    expect(onA.parentSpanId).toBe(onB.spanId);
    expect(reached.headers.traceparent).toBe(traceparent(clientTrace, onA.spanId));
    expect(onB.attributes).toMatchObject({
      'sessionfleet.front': 'http',
      'sessionfleet.decision': 'forward',
      'sessionfleet.owner': 'a',
      'sessionfleet.hop': false,
      'http.response.status_code': 200,
      'url.path': '/echo',
    });
    expect(onA.attributes).toMatchObject({ 'sessionfleet.decision': 'serve', 'sessionfleet.hop': true });
    // Never the query, the token or any other header value.
    expect(JSON.stringify(ofTrace)).not.toMatch(/secret-query|never-in-a-span/);
  });

  it('records a refusal with its catalogue code', async () => {
    const clientTrace = randomBytes(16).toString('hex');
    const answer = await fetch(`${agents.b.url}/echo`, {
      headers: {
        'x-session': 'bad id with spaces',
        traceparent: traceparent(clientTrace, randomBytes(8).toString('hex')),
      },
    });
    expect(answer.status).toBe(400);
    const [span] = await waitFor('the refused request span', () => {
      const found = spans.filter((s) => s.traceId === clientTrace);
      return found.length >= 1 ? found : undefined;
    });
    expect(span!.attributes).toMatchObject({
      'sessionfleet.error_code': 'INVALID_SESSION_ID',
      'sessionfleet.outcome': 'rejected',
      'http.response.status_code': 400,
    });
  });
});

describe('traces of the Copilot front', () => {
  it('makes a span of each JSON-RPC call, with its method, outcome, refusal code and hashed principal', async () => {
    const cli = await startCopilotCli();
    const agent = await startCopilotAgent({
      policy: { affinity: { type: 'copilot-jsonrpc' } },
      upstreamPort: cli.port,
      upstreamToken: cli.token,
      principals: { 'alice-token-tracing-41f2': 'alice' },
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiverUrl, OTEL_BSP_SCHEDULE_DELAY: '50' },
    });
    const client = await openRawClient(agent.clientPort);
    try {
      expect((await client.call('connect', { token: 'alice-token-tracing-41f2' })).error).toBeUndefined();
      expect((await client.call('ping', {})).error).toBeUndefined();
      // Not in the agent's method table: refused by the agent, never forwarded.
      expect((await client.call('no.such.method', {})).error).toBeDefined();
      const ofAgent = await waitFor('the three calls', () => {
        const found = spans.filter((s) => s.attributes['sessionfleet.front'] === 'copilot');
        return found.length >= 3 ? found : undefined;
      });
      const byName = Object.fromEntries(ofAgent.map((s) => [s.name, s]));
      expect(byName.connect?.attributes).toMatchObject({ 'sessionfleet.outcome': 'ok', 'rpc.method': 'connect' });
      expect(byName.ping?.attributes).toMatchObject({
        'sessionfleet.outcome': 'ok',
        'enduser.id': expect.stringMatching(/^[0-9a-f]{16}$/),
      });
      expect(byName['no.such.method']?.attributes).toMatchObject({
        'sessionfleet.outcome': 'error',
        'sessionfleet.error_code': 'METHOD_FORBIDDEN',
      });
      expect(JSON.stringify(ofAgent)).not.toContain('alice-token-tracing-41f2');
      expect(JSON.stringify(ofAgent)).not.toContain('"alice"');
    } finally {
      await client.close();
      await agent.dispose();
      await cli.dispose();
    }
  }, 60_000);
});
