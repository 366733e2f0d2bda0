/**
 * `session.create` of one session id on two agents of a fleet, end to end: two real Copilot CLIs
 * (each with its own session-state directory, so neither agent can read the other's owner record
 * and the fleet registry alone decides), two agent processes with `--redis`, and SDK clients of
 * two users. The create that loses the registry gets the answer that matches why: another user's
 * session is refused as on a single agent (SESSION_FORBIDDEN, "belongs to another user"); the
 * caller's own session exists already and is to be resumed (SESSION_EXISTS), as it is when the
 * agent asked holds it itself. Both when the id is already held elsewhere and when the two creates
 * race. A principal of the same name in another tenant is another user.
 */
import { approveAll, type CopilotClient } from '@github/copilot-sdk';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { rpcError, rpcErrorOf } from '../../helpers/copilot-rpc.js';
import { type CopilotFleet, startCopilotFleet } from './copilot-fleet-members.js';

const TOKENS = {
  alice: 'alice-token-race-4b7e19',
  bob: 'bob-token-race-c2d850',
  /** A principal of the same name in another tenant: not the same user. */
  aliceOfGlobex: 'alice-globex-token-race-97d3e0',
};
const ADMIN_TOKEN = 'admin-token-race-8f01aa';
const IDS = ['a', 'b'] as const;
type Id = (typeof IDS)[number];

const POLICY = {
  affinity: { type: 'copilot-jsonrpc' },
  sessionsPerInstance: 10,
  maxInstances: 2,
  placementWaitSeconds: 0,
};

let members: CopilotFleet<Id>;

beforeAll(async () => {
  members = await startCopilotFleet({
    ids: IDS,
    redisUrl: inject('redisUrl'),
    policy: POLICY,
    principals: {
      [TOKENS.alice]: { principal: 'alice', tenant: 'acme' },
      [TOKENS.bob]: { principal: 'bob', tenant: 'acme' },
      [TOKENS.aliceOfGlobex]: { principal: 'alice', tenant: 'globex' },
    },
    adminToken: ADMIN_TOKEN,
  });
});

afterAll(() => members?.stop());

const sdk = (agent: Id, user: keyof typeof TOKENS): Promise<CopilotClient> => members.sdk(agent, TOKENS[user]);

const create = (client: CopilotClient, sessionId: string) =>
  client.createSession({ onPermissionRequest: approveAll, sessionId });

const anotherUsers = (sessionId: string) => ({
  code: -31013,
  message: `session ${JSON.stringify(sessionId)} belongs to another user: use a session you created`,
  data: { code: 'SESSION_FORBIDDEN', status: 403, sessionId },
});

const alreadyYours = (sessionId: string) => ({
  code: -31022,
  message: `session ${JSON.stringify(sessionId)} already exists and is yours, so it cannot be created again: resume it with session.resume`,
  data: { code: 'SESSION_EXISTS', status: 409, sessionId },
});

/** Two creates of one id, at once: exactly one wins; returns the winner's agent and the loser's error. */
async function race(first: [Id, CopilotClient], second: [Id, CopilotClient], sessionId: string) {
  const outcomes = await Promise.allSettled([create(first[1], sessionId), create(second[1], sessionId)]);
  const won = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [i === 0 ? first[0] : second[0]] : []));
  const lost = outcomes.flatMap((o) => (o.status === 'rejected' ? [rpcError(o.reason)] : []));
  expect(won).toHaveLength(1);
  expect(lost).toHaveLength(1);
  return { winner: won[0]!, error: lost[0]! };
}

describe('session.create of one id through two agents of a fleet', () => {
  it("a create of another user's session held by another agent is refused as on a single agent", async () => {
    const aliceOnA = await sdk('a', 'alice');
    const bobOnB = await sdk('b', 'bob');
    await create(aliceOnA, 'held-by-alice');
    expect(await rpcErrorOf(create(bobOnB, 'held-by-alice'))).toEqual(anotherUsers('held-by-alice'));
    // Refused before b's CLI was asked: alice's session is untouched, and b holds nothing.
    expect(await members.owners('b')).toEqual({ 'held-by-alice': 'a' });
    expect(await members.heldBy('b')).toEqual([]);
    expect(await members.loadedOn('b', 'held-by-alice')).toBe(false);
    expect(await members.loadedOn('a', 'held-by-alice')).toBe(true);
  });

  it("a create of a session of a principal of the same name in another tenant is refused as another user's", async () => {
    const otherAlice = await sdk('b', 'aliceOfGlobex');
    expect(await rpcErrorOf(create(otherAlice, 'held-by-alice'))).toEqual(anotherUsers('held-by-alice'));
    expect(await members.heldBy('b')).toEqual([]);
    expect(await members.loadedOn('b', 'held-by-alice')).toBe(false);
  });

  it("a create of the caller's own session held by another agent says it exists: resume it", async () => {
    const aliceOnB = await sdk('b', 'alice');
    expect(await rpcErrorOf(create(aliceOnB, 'held-by-alice'))).toEqual(alreadyYours('held-by-alice'));
    expect(await members.heldBy('b')).toEqual([]);
    // What the answer says to do works: the resume through b reaches the session on a.
    const resumed = await aliceOnB.resumeSession('held-by-alice', { onPermissionRequest: approveAll });
    expect(resumed.sessionId).toBe('held-by-alice');
    expect(await members.heldBy('b')).toEqual([]);
    expect(await members.loadedOn('b', 'held-by-alice')).toBe(false);
  });

  it("a create of the caller's own session held by the agent it asks says it exists, as on a single agent", async () => {
    const aliceOnA = await sdk('a', 'alice');
    expect(await rpcErrorOf(create(aliceOnA, 'held-by-alice'))).toEqual(alreadyYours('held-by-alice'));
    expect(await members.owners('b')).toMatchObject({ 'held-by-alice': 'a' });
    expect(await members.heldBy('a')).toContain('held-by-alice');
  });

  it("two users racing to create one id on two agents: the loser is told it is another user's", async () => {
    const alice = await sdk('a', 'alice');
    const bob = await sdk('b', 'bob');
    for (const sessionId of ['users-race-1', 'users-race-2', 'users-race-3']) {
      const { winner, error } = await race(['a', alice], ['b', bob], sessionId);
      expect(error).toEqual(anotherUsers(sessionId));
      expect((await members.owners('a'))[sessionId]).toBe(winner);
      expect(await members.loadedOn(winner === 'a' ? 'b' : 'a', sessionId)).toBe(false);
    }
  });

  it('one user racing to create one id on two agents: the loser is told to resume it', async () => {
    const onA = await sdk('a', 'alice');
    const onB = await sdk('b', 'alice');
    for (const sessionId of ['own-race-1', 'own-race-2', 'own-race-3']) {
      const { winner, error } = await race(['a', onA], ['b', onB], sessionId);
      expect(error).toEqual(alreadyYours(sessionId));
      expect((await members.owners('b'))[sessionId]).toBe(winner);
      expect(await members.loadedOn(winner === 'a' ? 'b' : 'a', sessionId)).toBe(false);
    }
  });
});
