/**
 * The collaborative lock on the Copilot front in a fleet, end to end: two real Copilot CLIs, two
 * agent processes with `--redis` in front of them, and three users' `@github/copilot-sdk` clients
 * of one collaborative session: alice connected to agent a, which holds the session on its CLI,
 * bob and carol connected to agent b, whose hops take their calls to a. The owner agent takes the
 * fleet lock around every `session.send` until the turn's `session.idle`, so sends that arrive at
 * once through both agents are serialized: while a turn runs (the fake model holds its reply) the
 * other sends are waiters in the lock's queue in Redis and get no answer, their user messages
 * reach the CLI only after the turn before ended, each holder has a newer fencing token, and every
 * turn completes, seen in the same order by every client.
 */
import {
  approveAll,
  CopilotClient,
  type CopilotSession,
  RuntimeConnection,
  type SessionEvent,
} from '@github/copilot-sdk';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type FleetKeys, fleetKeys } from '../../../agent/fleet/keys.js';
import { startCopilotAgent } from '../../helpers/copilot-agent.js';
import {
  FAKE_MODEL_REPLY,
  type FakeModel,
  fakeModelSessionOptions,
  startFakeModel,
} from '../../helpers/copilot-fake-model.js';
import { eventually } from '../../helpers/copilot-rpc.js';
import { freePort } from '../../helpers/redis-server.js';
import { type CopilotFleet, startCopilotFleet } from './copilot-fleet-members.js';
import { inspector, uniqueFleet } from './helpers.js';

const TOKENS = {
  alice: 'alice-token-collab-61c0d9',
  bob: 'bob-token-collab-2e84fa',
  carol: 'carol-token-collab-7b13c5',
};
/** The session's writers: alice created it through a; bob and carol joined through b. */
const WRITERS = ['alice', 'bob', 'carol'] as const;
type Writer = (typeof WRITERS)[number];
const ADMIN_TOKEN = 'admin-token-collab-93a5e7';
const IDS = ['a', 'b'] as const;
type Id = (typeof IDS)[number];

const POLICY = {
  affinity: { type: 'copilot-jsonrpc' },
  sessionsPerInstance: 2,
  maxInstances: 2,
  placementWaitSeconds: 0,
  // Long enough that the waiting send is never told SESSION_BUSY while the test holds the turn.
  collaborative: { enabled: true, lockWaitSeconds: 60 },
};

let model: FakeModel;
let redis: Redis;
let keys: FleetKeys;
let members: CopilotFleet<Id>;
/** Clients of agents outside the fleet (`members` stops its own). */
const clients: CopilotClient[] = [];
let clis: CopilotFleet<Id>['clis'];

beforeAll(async () => {
  model = await startFakeModel();
  const redisUrl = inject('redisUrl');
  redis = await inspector(redisUrl);
  members = await startCopilotFleet({
    ids: IDS,
    redisUrl,
    policy: POLICY,
    principals: { [TOKENS.alice]: 'alice', [TOKENS.bob]: 'bob', [TOKENS.carol]: 'carol' },
    adminToken: ADMIN_TOKEN,
  });
  ({ clis } = members);
  keys = fleetKeys({ fleet: members.fleet });
});

afterAll(async () => {
  model?.release();
  await Promise.all(clients.splice(0).map((c) => c.forceStop().catch(() => {})));
  await members?.stop();
  await redis?.quit();
  await model?.close();
});

const sdk = (agent: Id, token: string): Promise<CopilotClient> => members.sdk(agent, token);

/** The lock's holder (`<holder id>:<fencing token>`) and its queue of waiters, read from Redis. */
async function lockState(sessionId: string): Promise<{ holder: string | null; token: number | null; waiting: number }> {
  const [holder, waiting] = await Promise.all([
    redis.get(keys.lockHolder(sessionId)),
    redis.zcard(keys.lockQueue(sessionId)),
  ]);
  const token = holder === null ? null : Number(holder.slice(holder.lastIndexOf(':') + 1));
  return { holder, token, waiting };
}

/** Events a client receives about the session, in arrival order (the CLI's own order). */
function record(session: CopilotSession): SessionEvent[] {
  const seen: SessionEvent[] = [];
  session.on((event) => {
    seen.push(event);
  });
  return seen;
}

const turnShape = (events: readonly SessionEvent[]) =>
  events
    .filter((e) => e.type === 'user.message' || e.type === 'assistant.message' || e.type === 'session.idle')
    .map((e) => (e.type === 'user.message' ? `user: ${e.data.content}` : e.type));

describe('Copilot collaborative session across agents (2 agents, 2 CLIs, --redis)', () => {
  it('sends through both agents at once are serialized by the owner’s fleet lock, and every turn completes', async () => {
    const alice = await sdk('a', TOKENS.alice);
    const mine = await alice.createSession({ onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) });
    const sessionId = mine.sessionId;
    expect((await members.owners('b'))[sessionId]).toBe('a');

    // Bob and carol join through b: b forwards to the owner, a, over a hop per client connection;
    // b holds nothing itself.
    const join = async (token: string) =>
      (await sdk('b', token)).resumeSession(sessionId, {
        onPermissionRequest: approveAll,
        ...fakeModelSessionOptions(model),
      });
    const writers: Record<Writer, CopilotSession> = {
      alice: mine,
      bob: await join(TOKENS.bob),
      carol: await join(TOKENS.carol),
    };
    expect(await members.heldBy('a')).toEqual([sessionId]);
    expect(await members.heldBy('b')).toEqual([]);
    const seenBy = Object.fromEntries(WRITERS.map((w) => [w, record(writers[w])])) as Record<Writer, SessionEvent[]>;
    const usersSeen = (w: Writer) => turnShape(seenBy[w]).filter((e) => e.startsWith('user:'));

    // Everyone sends at once, the model holding its replies: whichever send takes the lock first
    // starts a turn that cannot end yet; the others queue for the lock at the owner.
    model.hold();
    const before = model.completions;
    const answered: Writer[] = [];
    const sends = WRITERS.map((w) =>
      writers[w].send({ prompt: `${w} writes` }).then((messageId) => {
        answered.push(w);
        return messageId;
      }),
    );

    // One turn at a time: each is let go only once the test has seen that nothing of the sends
    // behind it reached the CLI. The lock passes in turn, each holder with a newer fencing token.
    let previous: Awaited<ReturnType<typeof lockState>> | undefined;
    for (let turn = 1; turn <= WRITERS.length; turn++) {
      await eventually(() => model.completions === before + turn, 20_000, `turn ${turn} at the model`);
      const behind = WRITERS.length - turn;
      await eventually(async () => (await lockState(sessionId)).waiting === behind, 20_000, `${behind} waiting`);
      await eventually(() => answered.length === turn, 20_000, `send ${turn} answered`);
      const expectedUsers = answered.map((w) => `user: ${w} writes`);
      await eventually(
        () => WRITERS.every((w) => usersSeen(w).length === turn),
        20_000,
        `turn ${turn}'s user message at every client`,
      );
      const now = await lockState(sessionId);
      expect(now.holder).not.toBeNull();
      expect(now.waiting).toBe(behind);
      if (previous) {
        expect(now.holder).not.toBe(previous.holder);
        expect(now.token).toBeGreaterThan(previous.token!);
      }
      previous = now;
      // The sends behind are still unanswered, made no model call, and no client saw their message.
      expect(answered).toHaveLength(turn);
      expect(model.completions).toBe(before + turn);
      for (const w of WRITERS) expect(usersSeen(w)).toEqual(expectedUsers);
      model.release();
      if (turn < WRITERS.length) model.hold();
    }
    await Promise.all(sends);
    await eventually(async () => (await lockState(sessionId)).holder === null, 20_000, 'the lock released');

    // Every turn completed, one after the other, and every client saw the same serialized history.
    const serialized = answered.flatMap((w) => [`user: ${w} writes`, 'assistant.message', 'session.idle']);
    await eventually(
      () => WRITERS.every((w) => turnShape(seenBy[w]).length >= serialized.length),
      20_000,
      'every turn at every client',
    );
    for (const w of WRITERS) expect(turnShape(seenBy[w])).toEqual(serialized);
    const replies = seenBy.bob.filter((e) => e.type === 'assistant.message').map((e) => e.data.content);
    expect(replies).toEqual(WRITERS.map(() => FAKE_MODEL_REPLY));
    // The history on the CLI agrees.
    const history = await mine.getEvents();
    expect(history.filter((e) => e.type === 'user.message').map((e) => e.data.content)).toEqual(
      answered.map((w) => `${w} writes`),
    );
    expect(model.completions).toBe(before + WRITERS.length);
  }, 90_000);
});

describe('Copilot collaborative session: waiting sends and busy answers (--redis)', () => {
  it('a waiting send whose client leaves gives up its place in the Redis queue at once; the send behind it is served next', async () => {
    const alice = await sdk('a', TOKENS.alice);
    const mine = await alice.createSession({ onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) });
    const sessionId = mine.sessionId;
    expect((await members.owners('b'))[sessionId]).toBe('a');
    const options = { onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) };
    // Bob waits through b (its hop to the owner, a, carries his place); carol waits on a itself.
    const bobClient = await sdk('b', TOKENS.bob);
    const leaving = await bobClient.resumeSession(sessionId, options);
    const staying = await (await sdk('a', TOKENS.carol)).resumeSession(sessionId, options);

    model.hold();
    const before = model.completions;
    await mine.send({ prompt: 'alice writes' });
    await eventually(() => model.completions === before + 1, 20_000, "alice's turn at the model");
    const holding = await eventually(async () => (await lockState(sessionId)).holder, 20_000, "alice's lock");
    const leaverSend = leaving.send({ prompt: 'bob writes' }).catch(() => 'failed');
    await eventually(async () => (await lockState(sessionId)).waiting === 1, 20_000, 'bob in the queue');
    let answered = false;
    const stayerSend = staying.send({ prompt: 'carol writes' }).then((messageId) => {
      answered = true;
      return messageId;
    });
    await eventually(async () => (await lockState(sessionId)).waiting === 2, 20_000, 'carol behind bob');

    // Bob's client goes away while alice's turn still holds the lock: his place leaves the queue
    // in Redis now, not when his turn would have come.
    await bobClient.forceStop();
    expect(await leaverSend).toBe('failed');
    await eventually(async () => (await lockState(sessionId)).waiting === 1, 20_000, "bob's place gone");
    expect((await lockState(sessionId)).holder).toBe(holding);
    expect(answered).toBe(false);

    // Alice's turn ends: carol's send is next, and bob's never reaches the CLI.
    model.release();
    expect(typeof (await stayerSend)).toBe('string');
    await eventually(async () => (await lockState(sessionId)).holder === null, 20_000, 'the lock released');
    // session.idle is not kept in the history; each finished turn leaves an assistant.turn_end.
    await eventually(
      async () => (await mine.getEvents()).filter((e) => e.type === 'assistant.turn_end').length === 2,
      20_000,
      'both turns ended',
    );
    expect(model.completions).toBe(before + 2);
    const history = await mine.getEvents();
    expect(history.filter((e) => e.type === 'user.message').map((e) => e.data.content)).toEqual([
      'alice writes',
      'carol writes',
    ]);
    expect((await lockState(sessionId)).waiting).toBe(0);
  }, 90_000);

  it('a send that waited lockWaitSeconds gets SESSION_BUSY in the same shape as without --redis', async () => {
    // One agent of a fleet of its own, with a short wait, in front of CLI a.
    const port = await freePort();
    const solo = await startCopilotAgent({
      policy: { ...POLICY, collaborative: { enabled: true, lockWaitSeconds: 1 } },
      upstreamPort: clis.a.port,
      upstreamToken: clis.a.token,
      principals: { [TOKENS.alice]: 'alice', [TOKENS.bob]: 'bob' },
      extraArgs: [
        ['--listen', `127.0.0.1:${port}`],
        ['--instance-id', 'solo'],
        ['--redis', inject('redisUrl')],
        ['--fleet', uniqueFleet()],
      ].flat(),
    });
    try {
      const connect = async (token: string) => {
        const client = new CopilotClient({
          connection: RuntimeConnection.forUri(solo.address, { connectionToken: token }),
        });
        clients.push(client);
        await client.start();
        return client;
      };
      const options = { onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) };
      const mine = await (await connect(TOKENS.alice)).createSession(options);
      const joined = await (await connect(TOKENS.bob)).resumeSession(mine.sessionId, options);
      model.hold();
      await mine.send({ prompt: 'alice holds the session' });
      let refused: { code?: unknown; message?: unknown; data?: unknown } | undefined;
      await joined.send({ prompt: 'bob waits too long' }).catch((error: typeof refused) => {
        refused = error;
      });
      expect({ code: refused?.code, message: refused?.message, data: refused?.data }).toEqual({
        code: -31015,
        message: `session "${mine.sessionId}" is busy (another write holds its lock): retry after the current write finishes`,
        data: { code: 'SESSION_BUSY', status: 409, sessionId: mine.sessionId, retryAfterSeconds: expect.any(Number) },
      });
    } finally {
      model.release();
      await solo.dispose();
    }
  }, 60_000);
});
