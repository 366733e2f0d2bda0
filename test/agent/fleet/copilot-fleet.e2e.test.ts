/**
 * The Copilot front in a fleet, end to end: three real Copilot CLIs and one shared session-state
 * directory (their "shared volume", which the agents stage each CLI's sessions in and out of, as
 * the constructs deploy it: ADR 0019), three agent processes with `--redis` in front of them, and SDK clients connected to different
 * agents. The tests run in order on one fleet (each leaves the state the next one builds on):
 * placement fills the free slots, calls land on the owner, quotas, the fleet full, the kill
 * switch through a non-owner, the owner dying (its saved session continues elsewhere), and the
 * rule for hops: an agent takes on a session another agent forwards to it only when the registry
 * names it the owner; otherwise it answers "not the owner" and the forwarding agent routes again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { approveAll, type CopilotClient, type CopilotSession } from '@github/copilot-sdk';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { signHopMark } from '../../../agent/copilot/hop.js';
import { OwnerHints, parseFleetKeys } from '../../../agent/fleet/owner-hint.js';
import {
  FAKE_MODEL_REPLY,
  type FakeModel,
  fakeModelSessionOptions,
  startFakeModel,
} from '../../helpers/copilot-fake-model.js';
import { eventually, openRawClient, rpcErrorOf } from '../../helpers/copilot-rpc.js';
import { type CopilotFleet, startCopilotFleet } from './copilot-fleet-members.js';

const TOKENS = { alice: 'alice-token-5d1c88e2b0', bob: 'bob-token-77a0c3f4e1', carol: 'carol-token-0e9b5a2d63' };
const ADMIN_TOKEN = 'admin-token-fleet-2f6a0c';
/** The fleet key every agent signs its hops with; the test signs one with it to speak as an agent. */
const FLEET_KEY = 'fleet-key-copilot-e2e-9c41d7a3';
const IDS = ['a', 'b', 'c'] as const;
type Id = (typeof IDS)[number];

const POLICY = {
  affinity: { type: 'copilot-jsonrpc' },
  sessionsPerInstance: 2,
  maxInstances: 3,
  placementWaitSeconds: 0,
  sessionsPerPrincipal: 4,
  sharedSessionState: true,
};

let model: FakeModel;
let shared: string;
let members: CopilotFleet<Id>;
let clis: CopilotFleet<Id>['clis'];
let agents: CopilotFleet<Id>['agents'];

beforeAll(async () => {
  model = await startFakeModel();
  shared = mkdtempSync(join(tmpdir(), 'sessionfleet-shared-state-'));
  members = await startCopilotFleet({
    ids: IDS,
    redisUrl: inject('redisUrl'),
    policy: POLICY,
    principals: { [TOKENS.alice]: 'alice', [TOKENS.bob]: 'bob', [TOKENS.carol]: 'carol' },
    adminToken: ADMIN_TOKEN,
    sharedState: shared,
    stageState: true,
    extraArgs: ['--fleet-key', FLEET_KEY],
  });
  ({ clis, agents } = members);
});

afterAll(async () => {
  await members?.stop();
  await model?.close();
  if (shared) rmSync(shared, { recursive: true, force: true });
});

const sdk = (agent: Id, token: string): Promise<CopilotClient> => members.sdk(agent, token);

function modelSession(client: CopilotClient): Promise<CopilotSession> {
  return client.createSession({ onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) });
}

const ids: Record<string, string> = {};
let alice: CopilotClient;
let aliceOnA: CopilotSession[] = [];

describe('Copilot front in a fleet (3 agents, 3 CLIs, one shared session-state directory)', () => {
  it('refuses a client that claims to be another agent (a hop mark not signed with the fleet key)', async () => {
    const client = await openRawClient(agents.a.clientPort);
    try {
      const reply = await client.call('connect', {
        token: TOKENS.alice,
        sessionfleet: { from: 'b', to: 'a', at: Date.now(), mac: 'forged-mac' },
      });
      expect(reply.error).toEqual({
        code: -32001,
        message: 'connect carried an invalid agent-to-agent mark with a bad signature: present a valid token',
        data: { code: 'UNAUTHENTICATED', status: 401 },
      });
    } finally {
      await client.close();
    }
  });

  it('fills the free slots here first, then the instance with the most; calls through any agent land on the owner', async () => {
    alice = await sdk('a', TOKENS.alice);
    aliceOnA = [await modelSession(alice), await modelSession(alice), await modelSession(alice)];
    [ids.s1, ids.s2, ids.s3] = aliceOnA.map((s) => s.sessionId) as [string, string, string];
    // a had two free slots; then b and c had two each, and the smaller id wins the tie.
    expect(await members.owners('c')).toEqual({ [ids.s1!]: 'a', [ids.s2!]: 'a', [ids.s3!]: 'b' });
    expect(await members.heldBy('a')).toEqual([ids.s1, ids.s2].sort());
    expect(await members.heldBy('b')).toEqual([ids.s3]);

    // A whole turn of the session on b, through a's client connection.
    const reply = await aliceOnA[2]!.sendAndWait({ prompt: 'hello from a, to b' }, 30_000);
    expect(reply?.data.content).toBe(FAKE_MODEL_REPLY);
    expect(await members.loadedOn('b', ids.s3!)).toBe(true);
    expect(await members.loadedOn('a', ids.s3!)).toBe(false);

    // Another client of alice's, on c, resumes the session held by a: it stays on a.
    const aliceOnC = await sdk('c', TOKENS.alice);
    const again = await aliceOnC.resumeSession(ids.s1!, {
      onPermissionRequest: approveAll,
      ...fakeModelSessionOptions(model),
    });
    expect((await again.sendAndWait({ prompt: 'hello via c' }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
    expect(await members.heldBy('c')).toEqual([]);
    expect(await members.loadedOn('a', ids.s1!)).toBe(true);
    expect(await members.loadedOn('c', ids.s1!)).toBe(false);
    expect((await members.owners('b'))[ids.s1!]).toBe('a');
  });

  it('refuses a principal beyond sessionsPerPrincipal with an error naming the quota', async () => {
    const onC = await sdk('c', TOKENS.alice);
    ids.s4 = (await modelSession(onC)).sessionId;
    expect((await members.owners('a'))[ids.s4]).toBe('c');
    expect(await rpcErrorOf(modelSession(onC))).toEqual({
      code: -31012,
      message: 'principal "alice" holds 4 sessions, the sessionsPerPrincipal quota (4): end one of your sessions first',
      data: {
        code: 'PRINCIPAL_QUOTA_REACHED',
        status: 429,
        quota: 'sessionsPerPrincipal',
        limit: 4,
        principal: 'alice',
      },
    });
  });

  it('answers SESSION_LIMIT_REACHED when every instance is full and the fleet is at maxInstances', async () => {
    const bob = await sdk('b', TOKENS.bob);
    ids.b1 = (await modelSession(bob)).sessionId;
    ids.b2 = (await modelSession(bob)).sessionId;
    const placed = await members.owners('a');
    expect([placed[ids.b1], placed[ids.b2]]).toEqual(['b', 'c']);
    const carol = await sdk('a', TOKENS.carol);
    expect(await rpcErrorOf(modelSession(carol))).toEqual({
      code: -31010,
      message: 'every instance is full and the fleet is at maxInstances (3 of 3 running): back off and retry',
      data: { code: 'SESSION_LIMIT_REACHED', status: 429, fleetAtMax: true, retryAfterSeconds: 5 },
    });
  });

  it('the kill switch asked of a non-owner agent ends the session on its owner', async () => {
    expect(await members.admin('a', `/admin/fleet/sessions/${ids.b2}`, 'DELETE')).toEqual({
      status: 200,
      body: { sessionId: ids.b2, terminated: true, via: 'owner', owner: 'c' },
    });
    expect(await members.heldBy('c')).toEqual([ids.s4]);
    await eventually(async () => !(await members.loadedOn('c', ids.b2!)), 5000, 'the owner CLI let go of the session');
    expect((await members.owners('b'))[ids.b2!]).toBeUndefined();
  });

  it('the owner dies (agent and CLI killed): its saved session continues on a live instance', async () => {
    // s3 had a turn on b, so its state is on the shared directory.
    await agents.b.stop('SIGKILL');
    await clis.b.stop('SIGKILL');
    // Until b's lease runs out (10 s) the fleet still names b; then the next call re-homes s3 on
    // the live instance with a free slot (a is full; c has the one the kill switch freed).
    const started = Date.now();
    let reply: Awaited<ReturnType<CopilotSession['sendAndWait']>> | undefined;
    for (;;) {
      try {
        reply = await aliceOnA[2]!.sendAndWait({ prompt: 'are you still there?' }, 30_000);
        break;
      } catch (error) {
        if (Date.now() - started > 25_000) throw error;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    expect(reply?.data.content).toBe(FAKE_MODEL_REPLY);
    expect((await members.owners('a'))[ids.s3!]).toBe('c');
    expect(await members.loadedOn('c', ids.s3!)).toBe(true);
    const events = await aliceOnA[2]!.getEvents();
    expect(events.filter((e) => e.type === 'user.message').map((e) => e.data.content)).toEqual([
      'hello from a, to b',
      'are you still there?',
    ]);
  });

  it('a hop for a session the registry does not give the receiver (its owner dead) is answered "not the owner", and nothing moves', async () => {
    // b1 is bob's session, registered on b, which is dead: its lease has run out. c has a free slot
    // once the kill switch ends s4, so a receiver that routed the hop itself would re-home b1 there.
    expect((await members.admin('a', `/admin/fleet/sessions/${ids.s4}`, 'DELETE')).status).toBe(200);
    expect((await members.owners('a'))[ids.b1!]).toBe('b');
    const hop = await openRawClient(agents.c.clientPort);
    try {
      const hints = new OwnerHints(parseFleetKeys(FLEET_KEY));
      const connected = await hop.call('connect', { token: TOKENS.bob, sessionfleet: signHopMark(hints, 'a', 'c') });
      expect(connected.error).toBeUndefined();
      const reply = await hop.call('session.resume', { sessionId: ids.b1 });
      expect(reply.error).toEqual({
        code: -32001,
        message: `session "${ids.b1}" is not held by instance c: start a new session`,
        data: { code: 'SESSION_NOT_FOUND', status: 404, sessionId: ids.b1, notOwner: 'c' },
      });
    } finally {
      await hop.close();
    }
    // The registry still names b: the receiver re-homed nothing; the next agent to route it decides.
    expect((await members.owners('a'))[ids.b1!]).toBe('b');
    expect(await members.heldBy('c')).toEqual([ids.s3]);
  });

  it('a forward to an agent that no longer holds the session is routed once more by the forwarding agent', async () => {
    // alice's client on c resumes s1, held by a: c forwards it to a and caches a as its owner.
    const aliceOnC = await sdk('c', TOKENS.alice);
    const options = { onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) };
    await aliceOnC.resumeSession(ids.s1!, options);
    expect(await members.heldBy('c')).toEqual([ids.s3]);
    // The kill switch ends s1 on a (its state stays saved); c's cached route still names a.
    expect(await members.admin('c', `/admin/fleet/sessions/${ids.s1}`, 'DELETE')).toMatchObject({
      status: 200,
      body: { terminated: true, via: 'owner', owner: 'a' },
    });
    // Resumed through c at once (within c's 5 s route cache): a does not hold s1 and the registry
    // gives it to nobody, so a answers "not the owner"; c forgets a, routes once more and places
    // s1 itself (it has the free slot). a never takes it on again, though it has room now too.
    const resumed = await aliceOnC.resumeSession(ids.s1!, options);
    expect((await members.owners('a'))[ids.s1!]).toBe('c');
    expect(await members.heldBy('c')).toEqual([ids.s1, ids.s3].sort());
    expect(await members.heldBy('a')).toEqual([ids.s2]);
    expect((await resumed.sendAndWait({ prompt: 'back on c' }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
    expect(await members.loadedOn('c', ids.s1!)).toBe(true);
    expect(await members.loadedOn('a', ids.s1!)).toBe(false);
  });
});
