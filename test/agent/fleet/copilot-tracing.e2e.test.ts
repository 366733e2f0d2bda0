/**
 * Trace context across a Copilot hop (ADR 0026), with real processes: an OTLP/HTTP receiver in
 * this test, one Copilot CLI, two agents of one fleet (the run's Redis) in front of it, and the
 * SDK client with `onGetTraceContext` — the SDK puts `traceparent`/`tracestate` in the params of
 * `session.create`, `session.resume` and `session.send`. One session slot per instance: the
 * client's first session is placed on a (where it connected), its second on b, and a forwards
 * that session's calls over its hop to b.
 *
 * What must hold: a's span continues the client's trace from the params; b's span (the owner's)
 * is a child of a's, from the hop's envelope, never of the client's params; the CLI — which
 * exports its own spans here too — is handed b's span, so its work is b's child; a call that
 * names no trace, or a malformed one, makes a root span on a and still the same chain below it;
 * the resume a makes itself over its hop (replaying the create's params) is parented on the call
 * that caused it, never on the trace context those stored params carried.
 */
import { randomBytes } from 'node:crypto';
import { approveAll, CopilotClient, type CopilotSession, RuntimeConnection } from '@github/copilot-sdk';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type CopilotAgent, startCopilotAgent } from '../../helpers/copilot-agent.js';
import { type CopilotCli, startCopilotCli } from '../../helpers/copilot-cli.js';
import {
  FAKE_MODEL_REPLY,
  type FakeModel,
  fakeModelSessionOptions,
  startFakeModel,
} from '../../helpers/copilot-fake-model.js';
import { eventually } from '../../helpers/copilot-rpc.js';
import { type ExportedSpan, type OtlpReceiver, startOtlpReceiver } from '../../helpers/otlp-receiver.js';
import { fleetAdmin, memberArgs, memberPorts, uniqueFleet, waitFor } from './helpers.js';

const TOKEN = 'alice-token-copilot-trace-6b2e';
const ADMIN_TOKEN = 'admin-token-copilot-trace-93d1';
const IDS = ['a', 'b'] as const;

let receiver: OtlpReceiver;
let model: FakeModel;
let cli: CopilotCli;
const agents = {} as Record<(typeof IDS)[number], CopilotAgent>;
let client: CopilotClient;
/** The session on b, created through a (the first test). */
let traced: CopilotSession | undefined;
/** What the client's `onGetTraceContext` answers now (nothing: the SDK sends no trace fields). */
let current: { traceparent?: string; tracestate?: string } = {};

const ids = () => ({ trace: randomBytes(16).toString('hex'), span: randomBytes(8).toString('hex') });

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  model = await startFakeModel();
  // The CLI's own OpenTelemetry export (what the SDK's `telemetry` option sets), as OTLP JSON.
  cli = await startCopilotCli({
    env: {
      COPILOT_OTEL_ENABLED: 'true',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '50',
    },
  });
  const fleet = uniqueFleet();
  const ports = await memberPorts(IDS);
  const redisUrl = inject('redisUrl');
  // In order: a is registered first, so a sees b once b is up.
  for (const id of IDS) {
    agents[id] = await startCopilotAgent({
      policy: {
        affinity: { type: 'copilot-jsonrpc' },
        sessionsPerInstance: 1,
        maxInstances: 2,
        placementWaitSeconds: 0,
      },
      upstreamPort: cli.port,
      upstreamToken: cli.token,
      principals: { [TOKEN]: 'alice' },
      extraArgs: memberArgs({ id, port: ports[id], redisUrl, fleet, adminToken: ADMIN_TOKEN }),
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '50' },
    });
  }
  const { instances } = fleetAdmin<(typeof IDS)[number]>((id) => agents[id].adminUrl, ADMIN_TOKEN);
  await eventually(async () => (await instances('a')).filter((i) => i.alive).length === 2, 10_000, '2 live');
  client = new CopilotClient({
    connection: RuntimeConnection.forUri(agents.a.address, { connectionToken: TOKEN }),
    onGetTraceContext: () => current,
  });
  await client.start();
}, 120_000);

afterAll(async () => {
  await client?.forceStop().catch(() => {});
  await Promise.all(Object.values(agents).map((a) => a.dispose()));
  await cli?.dispose();
  await model?.close();
  await receiver?.close();
});

/** The spans of `trace` named `name`, one per agent, once both arrived. */
function spansOf(trace: string, name: string): Promise<Record<'a' | 'b', ExportedSpan>> {
  return waitFor(`${name} spans of both agents`, () => {
    const found = receiver.spans.filter((s) => s.traceId === trace && s.name === name);
    const a = found.find((s) => s.instance === 'a');
    const b = found.find((s) => s.instance === 'b');
    return a && b ? { a, b } : undefined;
  });
}

/** The CLI's span named `name` whose parent is `parent` (the CLI exports as service `github-copilot`). */
function cliSpanUnder(parent: ExportedSpan, name: string): Promise<ExportedSpan> {
  return waitFor(`the CLI's ${name} under ${parent.instance}'s ${parent.name}`, () =>
    receiver.spans.find((s) => s.service === 'github-copilot' && s.name === name && s.parentSpanId === parent.spanId),
  );
}

describe('traces across a Copilot hop', () => {
  it("makes the owner's span a child of the forwarding agent's, which continues the SDK's trace context", async () => {
    const options = { onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) };
    const local = ids();
    current = { traceparent: `00-${local.trace}-${local.span}-01`, tracestate: 'congo=t61rcWkgMzE' };
    await client.createSession(options);
    // Placed on a, where the client is: one span, a child of the client's.
    const [onA] = await waitFor('the local create span', () => {
      const found = receiver.spans.filter((s) => s.traceId === local.trace && s.name === 'session.create');
      return found.length > 0 ? found : undefined;
    });
    expect(onA).toMatchObject({ instance: 'a', parentSpanId: local.span });
    expect(onA!.attributes).toMatchObject({ 'sessionfleet.trace_parent': 'params', 'sessionfleet.hop': false });

    // a is full: the second session is placed on b, through a's hop.
    const created = ids();
    current = { traceparent: `00-${created.trace}-${created.span}-01` };
    const session = await client.createSession(options);
    traced = session;
    const create = await spansOf(created.trace, 'session.create');
    expect(create.a.parentSpanId).toBe(created.span);
    expect(create.b.parentSpanId).toBe(create.a.spanId);
    expect(create.b.attributes).toMatchObject({ 'sessionfleet.trace_parent': 'hop', 'sessionfleet.hop': true });
    // The CLI got b's span in the params, not the client's: its work is b's child.
    await cliSpanUnder(create.b, 'session.provisioning');

    // A whole turn on b, through a: the send's spans link the same way.
    const sent = ids();
    current = { traceparent: `00-${sent.trace}-${sent.span}-01` };
    expect((await session.sendAndWait({ prompt: 'traced hello' }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
    const send = await spansOf(sent.trace, 'session.send');
    expect(send.a.parentSpanId).toBe(sent.span);
    expect(send.b.parentSpanId).toBe(send.a.spanId);
    expect(send.a.attributes).toMatchObject({ 'sessionfleet.outcome': 'ok' });
    expect(send.b.attributes).toMatchObject({ 'sessionfleet.outcome': 'ok', 'sessionfleet.hop': true });
    await cliSpanUnder(send.b, 'invoke_agent');

    // Without trace context from the client: a root span on a, and b's still a child of it.
    current = {};
    expect((await session.sendAndWait({ prompt: 'untraced hello' }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
    const root = await waitFor('the untraced send on a', () =>
      receiver.spans.find((s) => s.name === 'session.send' && s.instance === 'a' && s.parentSpanId === undefined),
    );
    const child = await waitFor('its child on b', () =>
      receiver.spans.find((s) => s.name === 'session.send' && s.instance === 'b' && s.parentSpanId === root.spanId),
    );
    expect(child.traceId).toBe(root.traceId);
  }, 120_000);

  it("ignores a malformed traceparent in the params: a root span, the call answered, the CLI handed the agent's", async () => {
    for (const traceparent of [
      `00-${'z'.repeat(32)}-${'1'.repeat(16)}-01`,
      `00-${'0'.repeat(32)}-${'1'.repeat(16)}-01`,
      `00-${'a'.repeat(31)}-${'1'.repeat(16)}-01`,
      `01-${'a'.repeat(32)}-${'1'.repeat(16)}-01-${'f'.repeat(100_000)}`,
    ]) {
      current = { traceparent, tracestate: 'x'.repeat(10_000) };
      const before = receiver.spans.length;
      expect((await traced!.sendAndWait({ prompt: 'malformed' }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
      const root = await waitFor('the send span on a', () =>
        receiver.spans.slice(before).find((s) => s.name === 'session.send' && s.instance === 'a'),
      );
      expect(root.parentSpanId).toBeUndefined();
      expect(root.attributes['sessionfleet.trace_parent']).toBeUndefined();
      // The owner still continues the forwarding agent's span, and the CLI got the owner's.
      const owner = await waitFor('its child on b', () =>
        receiver.spans.find((s) => s.instance === 'b' && s.parentSpanId === root.spanId),
      );
      await cliSpanUnder(owner, 'invoke_agent');
    }
  }, 120_000);

  it("parents a's own resume over the hop on the call that caused it, never on the trace its stored create params carried", async () => {
    // The hop no longer holds the session (still loaded on b for a second client there): a's next
    // call for it resumes it over the hop first, with the params of the client's create — whose
    // traceparent named the create's span, long over. (`session.detach` on the client's own
    // connection; the SDK's `disconnect()` would also retire the object.)
    current = {};
    const onB = new CopilotClient({
      connection: RuntimeConnection.forUri(agents.b.address, { connectionToken: TOKEN }),
    });
    await onB.start();
    try {
      await onB.resumeSession(traced!.sessionId, {
        onPermissionRequest: approveAll,
        ...fakeModelSessionOptions(model),
      });
      const rpc = (traced as unknown as { connection: { sendRequest(m: string, p: unknown): Promise<unknown> } })
        .connection;
      await rpc.sendRequest('session.detach', { sessionId: traced!.sessionId });
      const sent = ids();
      current = { traceparent: `00-${sent.trace}-${sent.span}-01` };
      const before = receiver.spans.length;
      expect((await traced!.sendAndWait({ prompt: 'after detach' }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
      const send = await spansOf(sent.trace, 'session.send');
      expect(send.a.parentSpanId).toBe(sent.span);
      // In the send's trace: the exporter may still deliver the span of onB's own resume (another
      // trace) after `before`, so the first resume on b is not necessarily a's. A resume parented on
      // the stored create's trace never turns up here, and the wait fails.
      const resume = await waitFor("b's span of a's resume, in the send's trace", () =>
        receiver.spans
          .slice(before)
          .find((s) => s.name === 'session.resume' && s.instance === 'b' && s.traceId === sent.trace),
      );
      expect(resume).toMatchObject({ traceId: sent.trace, parentSpanId: send.a.spanId });
      expect(resume.attributes).toMatchObject({ 'sessionfleet.trace_parent': 'hop', 'sessionfleet.outcome': 'ok' });
    } finally {
      await onB.forceStop();
    }
  }, 120_000);
});
