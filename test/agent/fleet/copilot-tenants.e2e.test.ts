/**
 * Tenants on the Copilot front in a fleet, end to end: two real Copilot CLIs, two agent processes
 * with `--redis` and `--tenant acme`, and SDK clients of users of two tenants — alice (tenant acme
 * in the principals file), amy (no tenant of her own: the agents' `--tenant`, acme) and bob
 * (tenant globex), plus a principal named alice in globex. A session held by one agent is used
 * through the other over the agents' hop: its tenant's users reach it, another tenant's users are
 * refused whatever they call, and `sessionsPerTenant` counts the tenant's sessions on both agents,
 * a create forwarded to the other agent included.
 */
import { approveAll, type CopilotClient } from '@github/copilot-sdk';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  FAKE_MODEL_REPLY,
  type FakeModel,
  fakeModelSessionOptions,
  startFakeModel,
} from '../../helpers/copilot-fake-model.js';
import { eventually, openRawClient, rpcErrorOf } from '../../helpers/copilot-rpc.js';
import { type CopilotFleet, startCopilotFleet } from './copilot-fleet-members.js';

const TOKENS = {
  alice: 'alice-token-tenants-3a9d51',
  amy: 'amy-token-tenants-e07c42',
  bob: 'bob-token-tenants-58b1f6',
  aliceOfGlobex: 'alice-globex-token-tenants-c4e2a9',
};
type User = keyof typeof TOKENS;
const ADMIN_TOKEN = 'admin-token-tenants-1d6f0b';
const IDS = ['a', 'b'] as const;
type Id = (typeof IDS)[number];

const POLICY = {
  affinity: { type: 'copilot-jsonrpc' },
  sessionsPerInstance: 2,
  maxInstances: 2,
  placementWaitSeconds: 0,
  sessionsPerTenant: 2,
};

let model: FakeModel;
let members: CopilotFleet<Id>;
let agents: CopilotFleet<Id>['agents'];

beforeAll(async () => {
  model = await startFakeModel();
  members = await startCopilotFleet({
    ids: IDS,
    redisUrl: inject('redisUrl'),
    policy: POLICY,
    principals: {
      [TOKENS.alice]: { principal: 'alice', tenant: 'acme' },
      [TOKENS.amy]: 'amy',
      [TOKENS.bob]: { principal: 'bob', tenant: 'globex' },
      [TOKENS.aliceOfGlobex]: { principal: 'alice', tenant: 'globex' },
    },
    adminToken: ADMIN_TOKEN,
    extraArgs: ['--tenant', 'acme'],
  });
  ({ agents } = members);
});

afterAll(async () => {
  await members?.stop();
  await model?.close();
});

const sdk = (agent: Id, user: User): Promise<CopilotClient> => members.sdk(agent, TOKENS[user]);

const sessionOptions = () => ({ onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) });

/** The fleet inventory of one tenant, asked of `via`: id, owner instance and principal. */
async function tenantSessions(via: Id, tenant: string) {
  const { body } = await members.admin(via, `/admin/fleet/sessions?tenant=${tenant}`);
  const sessions = body.sessions as Array<{ id: string; owner: string; principal: string; tenant: string }>;
  return sessions
    .map(({ id, owner, principal, tenant }) => ({ id, owner, principal, tenant }))
    .sort((x, y) => x.id.localeCompare(y.id));
}

const anotherUsers = (sessionId: string) => ({
  code: -31013,
  message: `session ${JSON.stringify(sessionId)} belongs to another user: use a session you created`,
  data: { code: 'SESSION_FORBIDDEN', status: 403, sessionId },
});

const ids: Record<string, string> = {};

describe('tenants on the Copilot front across two agents of a fleet', () => {
  it("a tenant's users reach their sessions through the agent that does not hold them", async () => {
    // globex's bob first, then alice (acme): a is full. amy's create (acme by --tenant) through a
    // is placed on b and forwarded there over the hop.
    ids.g1 = (await (await sdk('a', 'bob')).createSession(sessionOptions())).sessionId;
    const aliceOnA = await sdk('a', 'alice');
    ids.s1 = (await aliceOnA.createSession(sessionOptions())).sessionId;
    const amyOnA = await sdk('a', 'amy');
    const s2 = await amyOnA.createSession(sessionOptions());
    ids.s2 = s2.sessionId;
    expect(await members.owners('b')).toEqual({ [ids.g1]: 'a', [ids.s1]: 'a', [ids.s2]: 'b' });
    // The forwarded create kept its tenant: the registry counts it for acme.
    expect(await tenantSessions('a', 'acme')).toEqual(
      [
        { id: ids.s1, owner: 'a', principal: 'alice', tenant: 'acme' },
        { id: ids.s2, owner: 'b', principal: 'amy', tenant: 'acme' },
      ].sort((x, y) => x.id.localeCompare(y.id)),
    );
    expect(await tenantSessions('b', 'globex')).toEqual([
      { id: ids.g1, owner: 'a', principal: 'bob', tenant: 'globex' },
    ]);

    // alice, connected to b, resumes her session held by a and has a whole turn there.
    const aliceOnB = await sdk('b', 'alice');
    const s1 = await aliceOnB.resumeSession(ids.s1, sessionOptions());
    expect((await s1.sendAndWait({ prompt: 'hello from b' }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
    expect(await members.loadedOn('a', ids.s1)).toBe(true);
    expect(await members.loadedOn('b', ids.s1)).toBe(false);
    // amy's session on b, through a's connection that created it.
    expect((await s2.sendAndWait({ prompt: 'hello from a' }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
    expect(await members.loadedOn('b', ids.s2)).toBe(true);
    expect(await members.loadedOn('a', ids.s2)).toBe(false);
    expect(await members.heldBy('a')).toEqual([ids.g1, ids.s1].sort());
    expect(await members.heldBy('b')).toEqual([ids.s2]);
  });

  it("another tenant's user who knows the id is refused through either agent, whatever the call", async () => {
    const sessionId = ids.s1!;
    for (const user of ['bob', 'aliceOfGlobex'] as const) {
      for (const via of IDS) {
        // The SDK's resume, then raw calls the SDK would only make on a session it holds.
        const client = await sdk(via, user);
        expect(await rpcErrorOf(client.resumeSession(sessionId, sessionOptions())), `${user} via ${via}`).toEqual(
          anotherUsers(sessionId),
        );
        const raw = await openRawClient(agents[via].clientPort);
        try {
          expect((await raw.call('connect', { token: TOKENS[user] })).error).toBeUndefined();
          for (const [method, params] of [
            ['session.getMessages', { sessionId }],
            ['session.send', { sessionId, prompt: 'let me in' }],
            ['session.delete', { sessionId }],
          ] as const) {
            expect((await raw.call(method, params)).error, `${user} via ${via}: ${method}`).toEqual(
              anotherUsers(sessionId),
            );
          }
        } finally {
          await raw.close();
        }
      }
    }
    // Nothing moved: the session is alice's, on a, and still works for her.
    expect(await tenantSessions('b', 'acme')).toContainEqual({
      id: sessionId,
      owner: 'a',
      principal: 'alice',
      tenant: 'acme',
    });
    expect(await members.heldBy('b')).toEqual([ids.s2]);
  });

  it('sessionsPerTenant counts the tenant on both agents; other tenants keep their own', async () => {
    const quota = {
      code: -31020,
      message: `tenant "acme" holds 2 sessions, the sessionsPerTenant quota (2): end one of your tenant's sessions first`,
      data: { code: 'TENANT_QUOTA_REACHED', status: 429, quota: 'sessionsPerTenant', limit: 2, tenant: 'acme' },
    };
    // acme holds s1 on a and s2 on b.
    const aliceOnB = await sdk('b', 'alice');
    const amyOnA = await sdk('a', 'amy');
    expect(await rpcErrorOf(aliceOnB.createSession(sessionOptions()))).toEqual(quota);
    expect(await rpcErrorOf(amyOnA.createSession(sessionOptions()))).toEqual(quota);
    // globex (one session) takes the slot left on b.
    const bobOnB = await sdk('b', 'bob');
    ids.g2 = (await bobOnB.createSession(sessionOptions())).sessionId;
    expect((await members.owners('a'))[ids.g2]).toBe('b');

    // alice deletes s1 (held by a) through b: acme has a place again, and a a slot.
    await aliceOnB.deleteSession(ids.s1!);
    await eventually(async () => (await members.owners('a'))[ids.s1!] === undefined, 5000, 's1 left the registry');
    const s3 = (await amyOnA.createSession(sessionOptions())).sessionId;
    expect((await members.owners('b'))[s3]).toBe('a');
    expect(await rpcErrorOf(aliceOnB.createSession(sessionOptions()))).toEqual(quota);
    expect((await tenantSessions('a', 'acme')).map((s) => s.id).sort()).toEqual([ids.s2, s3].sort());
  });
});
