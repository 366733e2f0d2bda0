/**
 * `policy.limits` on the Copilot front (ADR 0025), end to end: two real Copilot CLIs, two agent
 * processes with `--redis` in front of them, the fake model holding turns back so they stay in
 * flight. `requestsPerPrincipal: 2` counts alice's JSON-RPC calls in flight — a `session.send`
 * from the send to its turn's end — on every agent of the fleet together: her third call is
 * refused with the same catalogue error the HTTP front answers, on the agent that holds her turns
 * and (once the agents have shared their counts) on the other one; bob is not affected; and once
 * her turns end she may call again.
 */
import { approveAll, type CopilotClient } from '@github/copilot-sdk';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type FakeModel, fakeModelSessionOptions, startFakeModel } from '../../helpers/copilot-fake-model.js';
import { eventually, openRawClient, type RawRpcClient, type RpcReply } from '../../helpers/copilot-rpc.js';
import { type CopilotFleet, startCopilotFleet } from './copilot-fleet-members.js';

const TOKENS = { alice: 'alice-token-limits-3e9a1c', bob: 'bob-token-limits-7f20d4' };
const ADMIN_TOKEN = 'admin-token-copilot-limits-51c8';
const IDS = ['a', 'b'] as const;
type Id = (typeof IDS)[number];

const POLICY = {
  affinity: { type: 'copilot-jsonrpc' },
  sessionsPerInstance: 4,
  maxInstances: 2,
  placementWaitSeconds: 0,
  limits: { requestsPerPrincipal: 2 },
};

/** What alice's third call gets, on either agent: the HTTP front's answer for the same limit. */
const ALICE_AT_LIMIT = {
  code: -31041,
  message:
    'principal "alice" holds 2 requests, its requestsPerPrincipal (2): wait for one of your requests, tasks or streams to end',
  data: {
    code: 'PRINCIPAL_LIMIT_REACHED',
    status: 429,
    limit: 'requestsPerPrincipal',
    value: 2,
    principal: 'alice',
    retryAfterSeconds: 1,
  },
};

let model: FakeModel;
let members: CopilotFleet<Id>;
const raw: RawRpcClient[] = [];

beforeAll(async () => {
  model = await startFakeModel();
  members = await startCopilotFleet({
    ids: IDS,
    redisUrl: inject('redisUrl'),
    policy: POLICY,
    principals: { [TOKENS.alice]: 'alice', [TOKENS.bob]: 'bob' },
    adminToken: ADMIN_TOKEN,
  });
});

afterAll(async () => {
  model?.release();
  await Promise.all(raw.map((c) => c.close().catch(() => {})));
  await members?.stop();
  await model?.close();
});

/** A bare client of `token` through `agent`, connected. */
async function rawClient(agent: Id, token: string): Promise<RawRpcClient> {
  const client = await openRawClient(members.agents[agent].clientPort);
  raw.push(client);
  const connected = await client.call('connect', { token });
  expect(connected.error).toBeUndefined();
  return client;
}

const list = (client: RawRpcClient): Promise<RpcReply> => client.call('session.list', {});

async function metric(agent: Id, prefix: string): Promise<number> {
  const text = await (await fetch(`${members.agents[agent].adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

describe('policy.limits on the Copilot front, fleet-wide (2 agents, 2 CLIs, Redis)', () => {
  it("counts alice's calls in flight on every agent: her third is refused, bob's are not, until her turns end", async () => {
    const alice: CopilotClient = await members.sdk('a', TOKENS.alice);
    const options = { onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) };
    const sessions = [await alice.createSession(options), await alice.createSession(options)];
    expect(await members.heldBy('a')).toEqual(sessions.map((s) => s.sessionId).sort());

    // Two turns held at the model: each is a call in flight from its send until session.idle.
    model.hold();
    const before = model.completions;
    for (const session of sessions) await session.send({ prompt: 'hold this turn' });
    await eventually(() => model.completions >= before + 2, 20_000, 'both turns at the model');

    // Her third call, on another connection of hers to the same agent, is refused.
    const aliceOnA = await rawClient('a', TOKENS.alice);
    const refused = await list(aliceOnA);
    expect(refused.error).toEqual(ALICE_AT_LIMIT);
    // Bob's budget is his own.
    const bobOnA = await rawClient('a', TOKENS.bob);
    expect((await list(bobOnA)).error).toBeUndefined();
    // The other agent holds none of her calls, yet refuses her once the counts are shared (1 s).
    const aliceOnB = await rawClient('b', TOKENS.alice);
    const onB = await eventually(async () => (await list(aliceOnB)).error, 10_000, "b refusing alice's call");
    expect(onB).toEqual(ALICE_AT_LIMIT);
    const bobOnB = await rawClient('b', TOKENS.bob);
    expect((await list(bobOnB)).error).toBeUndefined();

    // Counted in the series both fronts share, and listed in the usage inventory.
    expect(
      await metric('a', 'sessionfleet_limit_refusals_total{front="copilot",limit="requestsPerPrincipal"'),
    ).toBeGreaterThanOrEqual(1);
    expect(
      await metric('b', 'sessionfleet_limit_refusals_total{front="copilot",limit="requestsPerPrincipal"'),
    ).toBeGreaterThanOrEqual(1);
    expect(await metric('a', 'sessionfleet_rejections_total{code="PRINCIPAL_LIMIT_REACHED"')).toBeGreaterThanOrEqual(1);
    const usage = (await members.admin('a', '/admin/usage')).body.usage;
    expect(usage).toContainEqual({ principal: 'alice', tenant: null, requests: 2, streams: 0, tasks: 0 });

    // Her turns end: she may call again, here at once and on b after the next share.
    model.release();
    await eventually(async () => (await list(aliceOnA)).error === undefined, 20_000, 'alice served on a again');
    await eventually(async () => (await list(aliceOnB)).error === undefined, 10_000, 'alice served on b again');
    expect((await members.admin('a', '/admin/usage')).body.usage).toEqual([]);
  }, 120_000);

  it("a call forwarded to the owner agent counts there, turn included, and once: not on the client's agent", async () => {
    const options = { onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) };
    const aliceOnB = await members.sdk('b', TOKENS.alice);
    const held = await aliceOnB.createSession(options);
    expect((await members.owners('a'))[held.sessionId]).toBe('b');
    // Alice's client on a reaches it over a's hop to b.
    const aliceOnA = await members.sdk('a', TOKENS.alice);
    const viaA = await aliceOnA.resumeSession(held.sessionId, options);

    model.hold();
    const before = model.completions;
    await viaA.send({ prompt: 'a turn of a session on b, sent through a' });
    await eventually(() => model.completions >= before + 1, 20_000, 'the turn at the model');
    const usage = async (agent: Id) => (await members.admin(agent, '/admin/usage')).body.usage as unknown[];
    expect(await usage('b')).toEqual([{ principal: 'alice', tenant: null, requests: 1, streams: 0, tasks: 0 }]);
    expect(await usage('a')).toEqual([]);

    model.release();
    await eventually(async () => (await usage('b')).length === 0, 20_000, "the turn's budget back on b");
  }, 120_000);
});
