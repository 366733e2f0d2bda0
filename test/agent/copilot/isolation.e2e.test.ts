/**
 * The Copilot front end to end, with real peers: the Copilot CLI from npm (`copilot --headless`),
 * the agent as a process, and `@github/copilot-sdk` clients in this process. One CLI for the file.
 * Authentication, per-user isolation, the refused methods, ids both ways, large messages, quotas,
 * ownership across an agent restart, and garbage on one connection not disturbing another.
 */
import { approveAll, CopilotClient, RuntimeConnection } from '@github/copilot-sdk';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CopilotAgent, startCopilotAgent } from '../../helpers/copilot-agent.js';
import { type CopilotCli, startCopilotCli } from '../../helpers/copilot-cli.js';
import {
  FAKE_MODEL_REPLY,
  type FakeModel,
  fakeModelSessionOptions,
  startFakeModel,
} from '../../helpers/copilot-fake-model.js';
import { eventually, openRawClient, type RawRpcClient, rpcErrorOf } from '../../helpers/copilot-rpc.js';

const TOKENS = { alice: 'alice-token-5f1c9e2a7b', bob: 'bob-token-0d4e8a6c31' } as const;
const WRONG_TOKEN = 'not-a-known-token-771';
const POLICY = { affinity: { type: 'copilot-jsonrpc' }, sessionsPerInstance: 3, concurrencyPerInstance: 50 };

let cli: CopilotCli;
let agent: CopilotAgent;
let model: FakeModel;
const clients: CopilotClient[] = [];
const raws: RawRpcClient[] = [];

beforeAll(async () => {
  [cli, model] = await Promise.all([startCopilotCli(), startFakeModel()]);
  agent = await startCopilotAgent({
    policy: POLICY,
    upstreamPort: cli.port,
    upstreamToken: cli.token,
    principals: { [TOKENS.alice]: 'alice', [TOKENS.bob]: 'bob' },
  });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.stop().catch(() => [])));
  await Promise.all(raws.splice(0).map((r) => r.close()));
});

afterAll(async () => {
  await agent?.dispose();
  await model?.close();
  await cli?.dispose();
});

function sdk(token: string | undefined, address = agent.address): CopilotClient {
  const client = new CopilotClient({
    connection: RuntimeConnection.forUri(address, token === undefined ? {} : { connectionToken: token }),
  });
  clients.push(client);
  return client;
}

async function raw(token: string | undefined, port = agent.clientPort): Promise<RawRpcClient> {
  const client = await openRawClient(port);
  raws.push(client);
  if (token !== undefined) {
    const reply = await client.call('connect', { token });
    if (reply.error) throw new Error(`connect failed: ${reply.error.message}`);
  }
  return client;
}

const forbidden = (sessionId: string) => ({
  code: -31013,
  message: `session "${sessionId}" belongs to another user: use a session you created`,
  data: { code: 'SESSION_FORBIDDEN', status: 403, sessionId },
});

/** Stops every SDK client: the CLI saves and unloads what only they held. */
const stopClients = () => Promise.all(clients.splice(0).map((c) => c.stop().catch(() => [])));

/** The same refusal a fleet gives when the caller's own session is held by another agent. */
const alreadyYours = (sessionId: string) => ({
  code: -31022,
  message: `session "${sessionId}" already exists and is yours, so it cannot be created again: resume it with session.resume`,
  data: { code: 'SESSION_EXISTS', status: 409, sessionId },
});

/** A session with one full turn (so the CLI has saved it) that the SDK has let go of. */
async function savedSession(client: CopilotClient, prompt: string): Promise<string> {
  const session = await client.createSession({ onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) });
  const reply = await session.sendAndWait({ prompt }, 30_000);
  expect(reply?.data.content).toBe(FAKE_MODEL_REPLY);
  await session.disconnect();
  return session.sessionId;
}

describe('Copilot front: authentication', () => {
  it('refuses an unknown token with a JSON-RPC error and closes the connection', async () => {
    const error = await rpcErrorOf(sdk(WRONG_TOKEN).start());
    expect(error).toEqual({
      code: -32001,
      message: 'connect carried an unknown token (the SDK sends its connectionToken): present a valid token',
      data: { code: 'UNAUTHENTICATED', status: 401 },
    });

    const client = await raw(undefined);
    const reply = await client.call('connect', { token: WRONG_TOKEN, supportedTaskKinds: ['agent'] }, 7);
    expect(reply).toEqual({
      jsonrpc: '2.0',
      id: 7,
      error: {
        code: -32001,
        message: 'connect carried an unknown token (the SDK sends its connectionToken): present a valid token',
        data: { code: 'UNAUTHENTICATED', status: 401 },
      },
    });
    await client.closed;
  });

  it('refuses a client without a token, and any call before connect', async () => {
    expect(await rpcErrorOf(sdk(undefined).start())).toEqual({
      code: -32001,
      message: 'connect carried no token (the SDK sends its connectionToken): present a valid token',
      data: { code: 'UNAUTHENTICATED', status: 401 },
    });
    const client = await raw(undefined);
    expect((await client.call('session.list', {})).error).toEqual({
      code: -32001,
      message: '"session.list" before connect: send connect first: present a valid token',
      data: { code: 'UNAUTHENTICATED', status: 401 },
    });
    expect(client.isClosed()).toBe(false);
  });

  it('answers a valid connect with the CLI’s own handshake', async () => {
    const client = await raw(undefined);
    const reply = await client.call('connect', { token: TOKENS.alice, supportedTaskKinds: ['agent', 'shell'] });
    expect(reply.error).toBeUndefined();
    expect(reply.result).toMatchObject({ ok: true, protocolVersion: expect.any(Number), version: expect.any(String) });
    const alice = sdk(TOKENS.alice);
    await alice.start();
    expect(await alice.getStatus()).toMatchObject({ protocolVersion: expect.any(Number) });
  });
});

describe('Copilot front: sessions through the agent', () => {
  it('creates, lists, resumes and deletes a session with the SDK', async () => {
    const alice = sdk(TOKENS.alice);
    const id = await savedSession(alice, 'first prompt of alice');
    expect((await alice.listSessions()).map((s) => s.sessionId)).toContain(id);

    const resumed = await alice.resumeSession(id, {
      onPermissionRequest: approveAll,
      ...fakeModelSessionOptions(model),
    });
    const events = await resumed.getEvents();
    expect(events.filter((e) => e.type === 'assistant.message').map((e) => e.data.content)).toEqual([FAKE_MODEL_REPLY]);

    await alice.deleteSession(id);
    expect((await alice.listSessions()).map((s) => s.sessionId)).not.toContain(id);
    expect(await rpcErrorOf(resumed.getEvents())).toEqual({
      code: -32001,
      message: `session "${id}" is not loaded on this instance: session.resume it first; otherwise: start a new session`,
      data: { code: 'SESSION_NOT_FOUND', status: 404, sessionId: id },
    });
  });

  it('refuses the (N+1)th session on the instance with SESSION_LIMIT_REACHED; a delete frees the slot', async () => {
    const alice = sdk(TOKENS.alice);
    const sessions = [];
    for (let i = 0; i < POLICY.sessionsPerInstance; i++) {
      sessions.push(await alice.createSession({ onPermissionRequest: approveAll }));
    }
    const refusal = await rpcErrorOf(alice.createSession({ onPermissionRequest: approveAll }));
    expect(refusal).toEqual({
      code: -31010,
      message: 'this instance already holds its limit of 3 sessions: back off and retry',
      data: { code: 'SESSION_LIMIT_REACHED', status: 429, limit: 3 },
    });
    // Another user is refused too: the quota is the instance's.
    expect((await rpcErrorOf(sdk(TOKENS.bob).createSession({ onPermissionRequest: approveAll }))).data).toEqual({
      code: 'SESSION_LIMIT_REACHED',
      status: 429,
      limit: 3,
    });
    await alice.deleteSession(sessions[0]!.sessionId);
    const next = await alice.createSession({ onPermissionRequest: approveAll });
    expect(next.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    const readyz = await fetch(`${agent.adminUrl}/readyz`).then((r) => r.json());
    // Full: not ready for new sessions, yet still in the Service's rotation (its three sessions are served).
    expect(readyz).toEqual({
      status: 'not ready',
      reasons: ['no free session slot'],
      sessions: 3,
      capacity: 3,
      serving: { inRotation: true, reasons: [] },
    });
  });

  it('user B can neither resume, delete, use nor see user A’s session', async () => {
    const bobRaw = await raw(TOKENS.bob);
    const alice = sdk(TOKENS.alice);
    const seenByAlice: string[] = [];
    await alice.start();
    alice.onLifecycle((event) => seenByAlice.push(`${event.type} ${event.sessionId}`));
    const id = await savedSession(alice, 'the secret plan of alice');
    const kept = await alice.resumeSession(id, { onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) });

    const bob = sdk(TOKENS.bob);
    await bob.start();
    expect((await bob.listSessions()).map((s) => s.sessionId)).not.toContain(id);
    expect((await alice.listSessions()).map((s) => s.sessionId)).toContain(id);
    expect(await rpcErrorOf(bob.resumeSession(id, { onPermissionRequest: approveAll }))).toEqual(forbidden(id));
    expect(await rpcErrorOf(bob.deleteSession(id))).toEqual(forbidden(id));
    expect(await bob.getSessionMetadata(id).catch((e: { code: number }) => e.code)).toBe(-31013);

    // The CLI itself would let any connection do these on any session id.
    for (const [method, params] of [
      ['session.send', { sessionId: id, prompt: 'let me in' }],
      ['session.getMessages', { sessionId: id }],
      ['session.abort', { sessionId: id }],
      ['session.getMetadata', { sessionId: id }],
      ['session.create', { sessionId: id }],
      ['session.metadata.getClientMetadata', { sessionId: id }],
    ] as const) {
      expect((await bobRaw.call(method, params)).error, method).toEqual(forbidden(id));
    }
    expect((await bobRaw.call('session.getLastId', {})).result).not.toEqual({ sessionId: id });

    // Alice's session still works, and nothing about it reached Bob's connection.
    const reply = await kept.sendAndWait({ prompt: 'still mine?' }, 30_000);
    expect(reply?.data.content).toBe(FAKE_MODEL_REPLY);
    expect(seenByAlice).toContain(`session.created ${id}`);
    expect(JSON.stringify(bobRaw.inbound)).not.toContain(id);
    expect(bobRaw.inbound.filter((m) => m.method.startsWith('session.'))).toEqual([]);
  });

  it('refuses the server-wide methods that expose or change shared state, and passes the read-only ones', async () => {
    const client = await raw(TOKENS.alice);
    for (const method of [
      'sessions.list',
      'sessions.delete',
      'account.getQuota',
      'user.settings.get',
      'plugins.list',
      'mcp.config.list',
      'runtime.shutdown',
    ]) {
      expect((await client.call(method, {})).error, method).toEqual({
        code: -31014,
        message: `"${method}" reads or changes state the Copilot CLI shares between all of its users: this method is not available through the agent`,
        data: { code: 'METHOD_FORBIDDEN', status: 403, method },
      });
    }
    expect(await client.request('status.get', {})).toMatchObject({ version: expect.any(String) });
    expect(await client.request('auth.getStatus', {})).toMatchObject({ isAuthenticated: false });
    expect(await client.request('ping', { message: 'still up' })).toMatchObject({ message: 'pong: still up' });
  });
});

describe('Copilot front: the protocol', () => {
  it('keeps request ids exact in both directions, whatever ids the client picks', async () => {
    const client = await raw(TOKENS.alice);
    // The agent numbers its own upstream requests from 1: client ids 1, 2... must not be confused.
    const ids: Array<number | string> = [1, 2, 3, 0, -7, 2 ** 40, '1', 'x', 'ünïcode-id', '2'];
    const replies = await Promise.all(ids.map((id) => client.call('ping', { message: `m-${String(id)}` }, id)));
    expect(replies.map((r) => [r.id, (r.result as { message: string }).message])).toEqual(
      ids.map((id) => [id, `pong: m-${String(id)}`]),
    );

    // Requests from the CLI to the client: hooks are invoked on the SDK during a turn.
    const hookCalls: string[] = [];
    const alice = sdk(TOKENS.alice);
    const session = await alice.createSession({
      onPermissionRequest: approveAll,
      ...fakeModelSessionOptions(model),
      hooks: {
        onUserPromptSubmitted: async (input) => {
          hookCalls.push(input.prompt);
          return undefined;
        },
      },
    });
    const reply = await session.sendAndWait({ prompt: 'hooked prompt' }, 30_000);
    expect(reply?.data.content).toBe(FAKE_MODEL_REPLY);
    expect(hookCalls).toEqual(['hooked prompt']);
  });

  it('carries large messages both ways, interleaved with small ones', async () => {
    const client = await raw(TOKENS.alice);
    const big = 'é'.repeat(4 * 1024 * 1024); // 8 MiB of UTF-8 in 4 Mi characters
    const [large, small] = await Promise.all([
      client.call('ping', { message: big }),
      client.call('ping', { message: 'small' }),
    ]);
    expect((small.result as { message: string }).message).toBe('pong: small');
    expect((large.result as { message: string }).message === `pong: ${big}`).toBe(true);
  });

  it('fuzz: garbage on some connections never disturbs another connection or the agent', async () => {
    const alice = await raw(TOKENS.alice);
    const garbage = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.string({ maxLength: 200 }).map((s) => Buffer.from(`Content-Length: ${Buffer.byteLength(s)}\r\n\r\n${s}`)),
      fc.nat({ max: 2 ** 40 }).map((n) => Buffer.from(`Content-Length: ${n}\r\n\r\n{"jsonrpc":"2.0"`)),
      fc.string({ minLength: 8200, maxLength: 9000 }).map((s) => Buffer.from(`X-Junk: ${s}`)),
      fc.constant(Buffer.from('Content-Length: 5\r\n\r\n{"id"')),
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(garbage, fc.boolean(), async (bytes, authenticateFirst) => {
        const victim = await raw(authenticateFirst ? TOKENS.bob : undefined);
        victim.writeRaw(bytes);
        const pong = await alice.request('ping', { message: `alive ${++run}` });
        expect(pong).toMatchObject({ message: `pong: alive ${run}` });
        await victim.close();
      }),
      { numRuns: 40 },
    );
    expect(agent.process.exitCode).toBeNull();
    expect(
      agent.logs().filter((l) => l.msg === 'closing a Copilot client connection: malformed frame').length,
    ).toBeGreaterThan(0);
    const line = agent.logs().find((l) => l.msg === 'closing a Copilot client connection: malformed frame');
    expect(line).toMatchObject({ level: 40, front: 'copilot', reason: expect.any(String) });
  });
});

describe('Copilot front: two users create the same session id at once', () => {
  it('exactly one wins; the other gets SESSION_FORBIDDEN, and can neither use the session nor own its record', async () => {
    // An agent of its own, with room for every round's sessions whatever the outcome.
    const racer = await startCopilotAgent({
      policy: { ...POLICY, sessionsPerInstance: 20 },
      upstreamPort: cli.port,
      upstreamToken: cli.token,
      principals: { [TOKENS.alice]: 'alice', [TOKENS.bob]: 'bob' },
    });
    try {
      const direct = await raw(cli.token, cli.port);
      // Several rounds: both creates pass the owner check before either is loaded in most of them,
      // so the loser finds the session loaded by the winner.
      for (let round = 1; round <= 6; round++) {
        const id = `create-race-${round}-${Date.now().toString(36)}`;
        const users = {
          alice: await raw(TOKENS.alice, racer.clientPort),
          bob: await raw(TOKENS.bob, racer.clientPort),
        };
        const [aliceReply, bobReply] = await Promise.all([
          users.alice.call('session.create', { sessionId: id }),
          users.bob.call('session.create', { sessionId: id }),
        ]);
        const outcomes = { alice: aliceReply, bob: bobReply };
        const winners = (['alice', 'bob'] as const).filter((u) => outcomes[u].error === undefined);
        expect(winners, `round ${round}: one create succeeds`).toHaveLength(1);
        const winner = winners[0]!;
        const loser = winner === 'alice' ? 'bob' : 'alice';
        expect(outcomes[loser].error, `round ${round}: the other is refused`).toEqual(forbidden(id));

        // The loser cannot use the session; the winner can.
        for (const [method, params] of [
          ['session.send', { sessionId: id, prompt: 'mine now?' }],
          ['session.getMessages', { sessionId: id }],
          ['session.resume', { sessionId: id }],
          ['session.delete', { sessionId: id }],
        ] as const) {
          expect((await users[loser].call(method, params)).error, `round ${round}: ${method}`).toEqual(forbidden(id));
        }
        expect((await users[winner].call('session.getMessages', { sessionId: id })).error).toBeUndefined();
        // The owner recorded with the session on the CLI (what a restarted agent goes by) is the winner.
        expect(
          await direct.request('sessions.getClientMetadata', { sessionIds: [id], keys: ['sessionfleet/owner'] }),
        ).toEqual([expect.objectContaining({ sessionId: id, metadata: { 'sessionfleet/owner': winner } })]);
        await users[winner].request('session.delete', { sessionId: id });
      }
    } finally {
      await racer.dispose();
    }
  });
});

describe('Copilot front: one user creates the same session id twice at once', () => {
  it('exactly one create wins; the other is told the session exists and is to be resumed', async () => {
    for (let round = 1; round <= 4; round++) {
      const id = `own-create-race-${round}-${Date.now().toString(36)}`;
      const [one, two] = [await raw(TOKENS.alice), await raw(TOKENS.alice)];
      const replies = await Promise.all([
        one.call('session.create', { sessionId: id }),
        two.call('session.create', { sessionId: id }),
      ]);
      const errors = replies.flatMap((r) => (r.error ? [r.error] : []));
      expect(errors, `round ${round}: one create is refused`).toEqual([alreadyYours(id)]);
      await one.request('session.delete', { sessionId: id });
    }
  });
});

describe('Copilot front: ownership survives an agent restart', () => {
  it('the owner resumes a saved session through a fresh agent (empty memory, as after a restart); another user cannot; a session made without the agent is nobody’s', async () => {
    const id = await savedSession(sdk(TOKENS.alice), 'made before the restart');
    const second = await startCopilotAgent({
      policy: POLICY,
      upstreamPort: cli.port,
      upstreamToken: cli.token,
      principals: { [TOKENS.alice]: 'alice', [TOKENS.bob]: 'bob' },
    });
    try {
      const bob = sdk(TOKENS.bob, second.address);
      await bob.start();
      expect((await bob.listSessions()).map((s) => s.sessionId)).not.toContain(id);
      expect(await rpcErrorOf(bob.resumeSession(id, { onPermissionRequest: approveAll }))).toEqual(forbidden(id));

      const alice = sdk(TOKENS.alice, second.address);
      await alice.start();
      expect((await alice.listSessions()).map((s) => s.sessionId)).toContain(id);
      const resumed = await alice.resumeSession(id, { onPermissionRequest: approveAll });
      expect((await resumed.getEvents()).some((e) => e.type === 'user.message')).toBe(true);

      // Straight to the CLI, bypassing the agent: no owner is recorded.
      const direct = await raw(cli.token, cli.port);
      const foreign = 'made-without-the-agent-1';
      await direct.request('session.create', { sessionId: foreign });
      await direct.request('session.detach', { sessionId: foreign });
      expect(await rpcErrorOf(alice.resumeSession(foreign, { onPermissionRequest: approveAll }))).toEqual({
        code: -31013,
        message: `session "${foreign}" was not created through the agent and cannot be used through it: use a session you created`,
        data: { code: 'SESSION_FORBIDDEN', status: 403, sessionId: foreign },
      });
    } finally {
      await Promise.all(clients.splice(0).map((c) => c.stop().catch(() => [])));
      await second.dispose();
    }
  });
});

describe('Copilot front: the owner creating a session that exists', () => {
  const createWithId = (client: CopilotClient, sessionId: string) =>
    client.createSession({ onPermissionRequest: approveAll, sessionId, ...fakeModelSessionOptions(model) });
  /** The conversation the session holds: its user and assistant messages, in order. */
  const conversation = async (session: { getEvents(): Promise<Array<{ type: string; data: unknown }>> }) =>
    (await session.getEvents()).flatMap((e) =>
      e.type === 'user.message' || e.type === 'assistant.message'
        ? [`${e.type}: ${(e.data as { content: string }).content}`]
        : [],
    );

  it('its loaded session: refused with SESSION_EXISTS, and the session keeps its history', async () => {
    const alice = sdk(TOKENS.alice);
    const session = await alice.createSession({ onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) });
    expect((await session.sendAndWait({ prompt: 'the loaded turn' }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
    const id = session.sessionId;
    const history = ['user.message: the loaded turn', `assistant.message: ${FAKE_MODEL_REPLY}`];

    // Another connection of the same user, and the same connection: both refused.
    const again = sdk(TOKENS.alice);
    expect(await rpcErrorOf(createWithId(again, id))).toEqual(alreadyYours(id));
    const rawAlice = await raw(TOKENS.alice);
    expect((await rawAlice.call('session.create', { sessionId: id })).error).toEqual(alreadyYours(id));

    // What the answer says to do: the resume finds the earlier turn, and so does the first client.
    const resumed = await again.resumeSession(id, {
      onPermissionRequest: approveAll,
      ...fakeModelSessionOptions(model),
    });
    expect(await conversation(resumed)).toEqual(history);
    expect(await conversation(session)).toEqual(history);
  });

  it('its saved session, not loaded: refused with SESSION_EXISTS, and a resume finds its history', async () => {
    const id = await savedSession(sdk(TOKENS.alice), 'the saved turn');
    await stopClients();
    const alice = sdk(TOKENS.alice);
    expect(await rpcErrorOf(createWithId(alice, id))).toEqual(alreadyYours(id));
    expect(await rpcErrorOf(createWithId(alice, id))).toEqual(alreadyYours(id));
    const resumed = await alice.resumeSession(id, {
      onPermissionRequest: approveAll,
      ...fakeModelSessionOptions(model),
    });
    expect(await conversation(resumed)).toEqual([
      'user.message: the saved turn',
      `assistant.message: ${FAKE_MODEL_REPLY}`,
    ]);
    // Another user's create of it is still refused as another user's.
    expect(await rpcErrorOf(createWithId(sdk(TOKENS.bob), id))).toEqual(forbidden(id));
  });

  it('an id whose session is gone (deleted) or holds nothing to lose (no message, unloaded) may be created again by its owner', async () => {
    const alice = sdk(TOKENS.alice);
    const deleted = await savedSession(alice, 'to be deleted');
    await alice.deleteSession(deleted);
    const recreated = await createWithId(alice, deleted);
    expect(await conversation(recreated)).toEqual([]);

    // A session that never received a message is not saved by the CLI: it cannot be resumed.
    const empty = await alice.createSession({ onPermissionRequest: approveAll });
    await empty.disconnect();
    const emptyAgain = await createWithId(alice, empty.sessionId);
    expect(emptyAgain.sessionId).toBe(empty.sessionId);
    // The ids stay their owner's.
    const bob = sdk(TOKENS.bob);
    expect(await rpcErrorOf(createWithId(bob, deleted))).toEqual(forbidden(deleted));
    expect(await rpcErrorOf(createWithId(bob, empty.sessionId))).toEqual(forbidden(empty.sessionId));
    await alice.deleteSession(deleted);
    await alice.deleteSession(empty.sessionId);
  });
});

describe('Copilot front: a saved session belongs to its principal in its tenant', () => {
  const ALICE_ACME = 'alice-acme-token-7c21e9';
  const ALICE_GLOBEX = 'alice-globex-token-3b8d4f';
  const ALICE_PLAIN = 'alice-plain-token-91ad0c';
  const principals = {
    [ALICE_ACME]: { principal: 'alice', tenant: 'acme' },
    [ALICE_GLOBEX]: { principal: 'alice', tenant: 'globex' },
  };
  const agentsOf = (count: number, options: Partial<Parameters<typeof startCopilotAgent>[0]> = {}) =>
    Promise.all(
      Array.from({ length: count }, () =>
        startCopilotAgent({ policy: POLICY, upstreamPort: cli.port, upstreamToken: cli.token, principals, ...options }),
      ),
    );

  it('alice of another tenant can neither resume, see nor delete it, on the agent that made it or a fresh one; alice of its tenant resumes it', async () => {
    const [first, fresh] = (await agentsOf(2)) as [CopilotAgent, CopilotAgent];
    try {
      const id = await savedSession(sdk(ALICE_ACME, first.address), 'acme only');
      await stopClients();
      // The agent that made it (its owner cached) and a fresh one (the record read from the CLI).
      for (const agent of [first, fresh]) {
        const globex = sdk(ALICE_GLOBEX, agent.address);
        await globex.start();
        expect((await globex.listSessions()).map((s) => s.sessionId)).not.toContain(id);
        expect(await rpcErrorOf(globex.resumeSession(id, { onPermissionRequest: approveAll }))).toEqual(forbidden(id));
        expect(await rpcErrorOf(globex.deleteSession(id))).toEqual(forbidden(id));
      }
      const acme = sdk(ALICE_ACME, fresh.address);
      await acme.start();
      expect((await acme.listSessions()).map((s) => s.sessionId)).toContain(id);
      const resumed = await acme.resumeSession(id, {
        onPermissionRequest: approveAll,
        ...fakeModelSessionOptions(model),
      });
      expect((await resumed.getEvents()).some((e) => e.type === 'user.message')).toBe(true);
      expect((await resumed.sendAndWait({ prompt: 'still mine' }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
    } finally {
      await stopClients();
      await Promise.all([first.dispose(), fresh.dispose()]);
    }
  });

  it('lifecycle notifications and events about a session reach its principal in its tenant, never the principal of that name in another tenant', async () => {
    const [one] = (await agentsOf(1)) as [CopilotAgent];
    try {
      // Watchers: a connection of each alice that holds no session; the CLI sends every
      // connection the lifecycle notifications of every session.
      const watch = { acme: await raw(ALICE_ACME, one.clientPort), globex: await raw(ALICE_GLOBEX, one.clientPort) };
      const owners = { acme: sdk(ALICE_ACME, one.address), globex: sdk(ALICE_GLOBEX, one.address) };
      const ids = {
        acme: await savedSession(owners.acme, 'acme lifecycle'),
        globex: await savedSession(owners.globex, 'globex lifecycle'),
      };
      await owners.acme.deleteSession(ids.acme);
      await owners.globex.deleteSession(ids.globex);
      const lifecycle = (tenant: 'acme' | 'globex', sessionId: string) =>
        watch[tenant].inbound
          .filter(
            (m) => m.method === 'session.lifecycle' && (m.params as { sessionId?: unknown }).sessionId === sessionId,
          )
          .map((m) => (m.params as { type: string }).type);
      // Each alice sees her own session's whole life, from a connection that does not hold it ...
      for (const tenant of ['acme', 'globex'] as const) {
        await eventually(
          () => lifecycle(tenant, ids[tenant]).includes('session.deleted'),
          10_000,
          `${tenant}'s lifecycle`,
        );
        expect(lifecycle(tenant, ids[tenant])).toContain('session.created');
      }
      // ... and nothing about the other alice's: the CLI sent it to both connections before it
      // answered these pings on them.
      await Promise.all([watch.acme.request('ping', {}), watch.globex.request('ping', {})]);
      expect(JSON.stringify(watch.acme.inbound)).not.toContain(ids.globex);
      expect(JSON.stringify(watch.globex.inbound)).not.toContain(ids.acme);
    } finally {
      await stopClients();
      await one.dispose();
    }
  });

  it('an owner record without a tenant (written before tenants were recorded) belongs to --tenant', async () => {
    const options = { principals: { ...principals, [ALICE_PLAIN]: 'alice' }, extraArgs: ['--tenant', 'acme'] };
    const [first, fresh] = (await agentsOf(2, options)) as [CopilotAgent, CopilotAgent];
    try {
      const client = sdk(ALICE_PLAIN, first.address);
      const session = await client.createSession({
        onPermissionRequest: approveAll,
        ...fakeModelSessionOptions(model),
      });
      expect((await session.sendAndWait({ prompt: 'old record' }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
      // Make the record what an agent of the earlier version wrote: the principal alone.
      const direct = await raw(cli.token, cli.port);
      const read = { sessionIds: [session.sessionId], keys: ['sessionfleet/owner', 'sessionfleet/tenant'] };
      expect(await direct.request('sessions.getClientMetadata', read)).toEqual([
        expect.objectContaining({
          metadata: expect.objectContaining({ 'sessionfleet/owner': 'alice', 'sessionfleet/tenant': 'acme' }),
        }),
      ]);
      await direct.request('session.metadata.updateClientMetadata', {
        sessionId: session.sessionId,
        remove: ['sessionfleet/tenant'],
      });
      await session.disconnect();
      await stopClients();

      const globex = sdk(ALICE_GLOBEX, fresh.address);
      expect(await rpcErrorOf(globex.resumeSession(session.sessionId, { onPermissionRequest: approveAll }))).toEqual(
        forbidden(session.sessionId),
      );
      // alice of --tenant's tenant (her own entry names none, or names acme) is its owner.
      for (const token of [ALICE_PLAIN, ALICE_ACME]) {
        const owner = sdk(token, fresh.address);
        const resumed = await owner.resumeSession(session.sessionId, { onPermissionRequest: approveAll });
        expect((await resumed.getEvents()).some((e) => e.type === 'user.message')).toBe(true);
        await resumed.disconnect();
      }
    } finally {
      await stopClients();
      await Promise.all([first.dispose(), fresh.dispose()]);
    }
  });
});

describe('Copilot front: secrets', () => {
  it('never writes a token or a provider key to its output', async () => {
    await eventually(() => agent.logs().length > 5, 5000, 'log lines');
    const output = agent.output();
    for (const secret of [
      TOKENS.alice,
      TOKENS.bob,
      WRONG_TOKEN,
      cli.token,
      fakeModelSessionOptions(model).provider.apiKey,
    ]) {
      expect(output).not.toContain(secret);
    }
    // The provider key did reach the model, through the CLI: it was in the traffic the agent relayed.
    expect(model.authorizations).toContain(`Bearer ${fakeModelSessionOptions(model).provider.apiKey}`);
  });
});
