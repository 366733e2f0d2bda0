/**
 * The Copilot front's quotas and lifecycle end to end: idle expiry then resume, least-recently-used
 * eviction, concurrency counted per turn, collaborative turns serialized, SIGTERM draining, and the
 * CLI dying. One real CLI for the file (killed by the last test); agents with short timeouts; whole
 * turns against the offline fake model, held to keep turns in flight as long as a test needs.
 */
import { approveAll, CopilotClient, type CopilotSession, RuntimeConnection } from '@github/copilot-sdk';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CopilotAgent, type StartAgentOptions, startCopilotAgent } from '../../helpers/copilot-agent.js';
import { type CopilotCli, startCopilotCli } from '../../helpers/copilot-cli.js';
import {
  FAKE_MODEL_REPLY,
  type FakeModel,
  fakeModelSessionOptions,
  startFakeModel,
} from '../../helpers/copilot-fake-model.js';
import { eventually, openRawClient, type RawRpcClient, rpcErrorOf } from '../../helpers/copilot-rpc.js';

const TOKENS = {
  alice: 'alice-token-9c2e41d7aa',
  bob: 'bob-token-3b7f0e5c19',
  carol: 'carol-token-5e0a8d2f61',
} as const;

let cli: CopilotCli;
let model: FakeModel;
const agents: CopilotAgent[] = [];
const clients: CopilotClient[] = [];
const raws: RawRpcClient[] = [];

beforeAll(async () => {
  [cli, model] = await Promise.all([startCopilotCli(), startFakeModel()]);
});

afterEach(async () => {
  model.release();
  await Promise.all(clients.splice(0).map((c) => c.forceStop().catch(() => {})));
  await Promise.all(raws.splice(0).map((r) => r.close()));
  await Promise.all(agents.splice(0).map((a) => a.dispose()));
});

afterAll(async () => {
  await model?.close();
  await cli?.dispose();
});

async function agentWith(policy: Record<string, unknown>, extra: Partial<StartAgentOptions> = {}) {
  const agent = await startCopilotAgent({
    policy: { affinity: { type: 'copilot-jsonrpc' }, ...policy },
    upstreamPort: cli.port,
    upstreamToken: cli.token,
    principals: { [TOKENS.alice]: 'alice', [TOKENS.bob]: 'bob' },
    ...extra,
  });
  agents.push(agent);
  return agent;
}

async function sdk(agent: CopilotAgent, token: string): Promise<CopilotClient> {
  const client = new CopilotClient({ connection: RuntimeConnection.forUri(agent.address, { connectionToken: token }) });
  clients.push(client);
  await client.start();
  return client;
}

async function raw(port: number, token: string): Promise<RawRpcClient> {
  const client = await openRawClient(port);
  raws.push(client);
  const reply = await client.call('connect', { token });
  if (reply.error) throw new Error(reply.error.message);
  return client;
}

function modelSession(client: CopilotClient): Promise<CopilotSession> {
  return client.createSession({ onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) });
}

/** Resolves at the session's next turn end. */
function nextIdle(session: CopilotSession): Promise<void> {
  return new Promise((resolve) => {
    const off = session.on('session.idle', () => {
      off();
      resolve();
    });
  });
}

/** Whether the CLI has the session loaded, asked on a connection of our own straight to the CLI. */
async function loadedOnCli(sessionId: string): Promise<boolean> {
  const direct = await raw(cli.port, cli.token);
  const reply = await direct.call('session.getMessages', { sessionId });
  await direct.close();
  if (reply.error && /Session not found/.test(reply.error.message)) return false;
  if (reply.error) throw new Error(reply.error.message);
  return true;
}

async function metric(agent: CopilotAgent, name: string): Promise<number> {
  const text = await fetch(`${agent.adminUrl}/metrics`).then((r) => r.text());
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  if (!line) throw new Error(`no metric ${name}`);
  return Number(line.split(' ').at(-1));
}

describe('Copilot front: expiry and eviction', () => {
  it('detaches an idle session on the CLI, answers SESSION_EXPIRED, and lets the owner resume it', async () => {
    const agent = await agentWith({ sessionIdleTimeoutSeconds: 1, sessionsPerInstance: 2 });
    const alice = await sdk(agent, TOKENS.alice);
    const session = await modelSession(alice);
    expect((await session.sendAndWait({ prompt: 'remember me' }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
    const id = session.sessionId;
    expect(await loadedOnCli(id)).toBe(true);

    await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === id && l.reason === 'expired-idle');
    await eventually(async () => !(await loadedOnCli(id)), 5000, 'the CLI unloaded the session');
    expect(await rpcErrorOf(session.send({ prompt: 'are you there?' }))).toEqual({
      code: -32001,
      message: `session "${id}" was detached after 1 s without a request (idle timeout); its state is saved, so session.resume continues it; otherwise: start a new session`,
      data: { code: 'SESSION_EXPIRED', status: 404, sessionId: id, reason: 'expired-idle' },
    });

    const resumed = await alice.resumeSession(id, {
      onPermissionRequest: approveAll,
      ...fakeModelSessionOptions(model),
    });
    const events = await resumed.getEvents();
    expect(events.filter((e) => e.type === 'user.message').map((e) => e.data.content)).toEqual(['remember me']);
    // Resuming takes a slot of the quota again.
    const inventory = await fetch(`${agent.adminUrl}/readyz`).then((r) => r.json());
    expect(inventory).toMatchObject({ sessions: 1, capacity: 2 });
  });

  it('with evictionPolicy "lru", a full instance detaches its least recently used session instead of refusing', async () => {
    const agent = await agentWith({ sessionsPerInstance: 2, evictionPolicy: 'lru' });
    const alice = await sdk(agent, TOKENS.alice);
    const oldest = await alice.createSession({ onPermissionRequest: approveAll });
    const middle = await alice.createSession({ onPermissionRequest: approveAll });
    await oldest.getEvents(); // now `middle` is the least recently used
    const newest = await alice.createSession({ onPermissionRequest: approveAll });

    expect(await rpcErrorOf(middle.getEvents())).toEqual({
      code: -32001,
      message: `session "${middle.sessionId}" was detached to make room for a newer session (least-recently-used eviction); its state is saved, so session.resume continues it; otherwise: start a new session`,
      data: { code: 'SESSION_EXPIRED', status: 404, sessionId: middle.sessionId, reason: 'evicted' },
    });
    await eventually(async () => !(await loadedOnCli(middle.sessionId)), 5000, 'the CLI unloaded the evicted session');
    expect(Array.isArray(await oldest.getEvents())).toBe(true);
    expect(Array.isArray(await newest.getEvents())).toBe(true);
  });
});

describe('Copilot front: concurrency and collaborative turns', () => {
  it('counts a turn as in flight from session.send to session.idle, and throttles beyond the limit', async () => {
    const agent = await agentWith({ sessionsPerInstance: 2, concurrencyPerInstance: 2 });
    const alice = await sdk(agent, TOKENS.alice);
    const probe = await raw(agent.clientPort, TOKENS.alice);
    const [one, two] = [await modelSession(alice), await modelSession(alice)];
    model.hold();
    const before = model.completions;
    const idle = [nextIdle(one), nextIdle(two)];
    await one.send({ prompt: 'first' });
    await two.send({ prompt: 'second' });
    await eventually(() => model.completions >= before + 2, 15_000, 'both turns reached the model');

    expect(await metric(agent, 'sessionfleet_inflight_requests')).toBe(2);
    expect((await probe.call('ping', { message: 'x' })).error).toEqual({
      code: -31011,
      message: 'this instance already serves its limit of 2 requests: back off and retry',
      data: { code: 'CONCURRENCY_LIMIT_REACHED', status: 429, limit: 2 },
    });

    model.release();
    await Promise.all(idle);
    await eventually(async () => (await metric(agent, 'sessionfleet_inflight_requests')) === 0, 5000, 'turns ended');
    expect(await probe.request('ping', { message: 'x' })).toMatchObject({ message: 'pong: x' });
  });

  it('collaborative sessions: another user may join; concurrent sends are serialized; a long wait is SESSION_BUSY', async () => {
    const agent = await agentWith({ sessionsPerInstance: 4, collaborative: { enabled: true, lockWaitSeconds: 1 } });
    const alice = await sdk(agent, TOKENS.alice);
    const bob = await sdk(agent, TOKENS.bob);
    const mine = await modelSession(alice);
    const joined = await bob.resumeSession(mine.sessionId, {
      onPermissionRequest: approveAll,
      ...fakeModelSessionOptions(model),
    });
    expect(await rpcErrorOf(bob.deleteSession(mine.sessionId))).toEqual({
      code: -31013,
      message: `session "${mine.sessionId}" belongs to another user: use a session you created`,
      data: { code: 'SESSION_FORBIDDEN', status: 403, sessionId: mine.sessionId },
    });

    // Alice's turn holds the session; Bob's send waits for it (the CLI alone would queue it at once).
    model.hold();
    const aliceIdle = nextIdle(mine);
    await mine.send({ prompt: 'alice writes' });
    let bobSent = false;
    const bobSend = joined.send({ prompt: 'bob writes' }).then((messageId) => {
      bobSent = true;
      return messageId;
    });
    await new Promise((r) => setTimeout(r, 400));
    expect(bobSent).toBe(false);
    model.release();
    await aliceIdle;
    expect(typeof (await bobSend)).toBe('string');
    await eventually(async () => (await metric(agent, 'sessionfleet_inflight_requests')) === 0, 10_000, 'both turns');
    const users = (await mine.getEvents()).filter((e) => e.type === 'user.message').map((e) => e.data.content);
    expect(users).toEqual(['alice writes', 'bob writes']);

    // Past lockWaitSeconds the waiting sender is told the session is busy.
    model.hold();
    await mine.send({ prompt: 'alice again' });
    expect(await rpcErrorOf(joined.send({ prompt: 'bob again' }))).toEqual({
      code: -31015,
      message: `session "${mine.sessionId}" is busy (another write holds its lock): retry after the current write finishes`,
      // The same shape as in a fleet; retryAfterSeconds is the in-process lock's TTL (lockTtlSeconds).
      data: { code: 'SESSION_BUSY', status: 409, sessionId: mine.sessionId, retryAfterSeconds: 30 },
    });
  });
});

describe('Copilot front: a collaborative send whose client leaves while it waits', () => {
  it('leaves the line at once: its request slot is given back and the send behind it is served next', async () => {
    const agent = await agentWith({
      sessionsPerInstance: 4,
      // Long enough that no waiting send is ever told SESSION_BUSY while the test holds the turn.
      collaborative: { enabled: true, lockWaitSeconds: 60 },
    });
    const alice = await sdk(agent, TOKENS.alice);
    const mine = await modelSession(alice);
    const join = async () =>
      (await sdk(agent, TOKENS.bob)).resumeSession(mine.sessionId, {
        onPermissionRequest: approveAll,
        ...fakeModelSessionOptions(model),
      });
    // Two connections of bob's: the first leaves while it waits, the second waits behind it.
    const leaverClient = clients.length;
    const leaving = await join();
    const staying = await join();
    const inFlight = () => metric(agent, 'sessionfleet_inflight_requests');

    model.hold();
    const before = model.completions;
    const aliceIdle = nextIdle(mine);
    await mine.send({ prompt: 'alice writes' });
    await eventually(() => model.completions === before + 1, 15_000, "alice's turn at the model");
    // The turn, then each waiting send, holds one request slot.
    const leaverSend = leaving.send({ prompt: 'the leaver writes' }).catch(() => 'failed');
    await eventually(async () => (await inFlight()) === 2, 10_000, 'the first send waiting');
    let answered = false;
    const stayerSend = staying.send({ prompt: 'bob writes' }).then((id) => {
      answered = true;
      return id;
    });
    await eventually(async () => (await inFlight()) === 3, 10_000, 'the second send waiting');

    // The leaver's client goes away while alice's turn still holds the session: its send leaves the
    // line (its slot comes back) without waiting for its turn.
    await clients[leaverClient]!.forceStop();
    expect(await leaverSend).toBe('failed');
    await eventually(async () => (await inFlight()) === 2, 10_000, "the leaver's slot given back");
    expect(answered).toBe(false);
    expect(model.completions).toBe(before + 1);

    // Alice's turn ends: the send behind the leaver is served next, and the leaver's never runs.
    const stayerIdle = nextIdle(staying);
    model.release();
    await aliceIdle;
    expect(typeof (await stayerSend)).toBe('string');
    await stayerIdle;
    await eventually(async () => (await inFlight()) === 0, 10_000, 'every turn ended');
    const users = (await mine.getEvents()).filter((e) => e.type === 'user.message').map((e) => e.data.content);
    expect(users).toEqual(['alice writes', 'bob writes']);
    expect(model.completions).toBe(before + 2);
  });
});

describe('Copilot front: sessionsPerPrincipal without --redis', () => {
  const quotaError = (principal: string, held: number, limit: number) => ({
    code: -31012,
    message: `principal "${principal}" holds ${held} sessions, the sessionsPerPrincipal quota (${limit}): end one of your sessions first`,
    data: { code: 'PRINCIPAL_QUOTA_REACHED', status: 429, quota: 'sessionsPerPrincipal', limit, principal },
  });

  it('refuses a user’s session beyond the quota with the error a fleet gives; other users are not held to it; a delete frees the place', async () => {
    // No --redis: the agent's in-process coordinator places the sessions.
    const agent = await agentWith({ sessionsPerInstance: 5, sessionsPerPrincipal: 1 });
    const alice = await sdk(agent, TOKENS.alice);
    const first = await alice.createSession({ onPermissionRequest: approveAll });
    expect(await rpcErrorOf(alice.createSession({ onPermissionRequest: approveAll }))).toEqual(
      quotaError('alice', 1, 1),
    );
    // The quota is the user's, not the connection's.
    const aliceAgain = await sdk(agent, TOKENS.alice);
    expect(await rpcErrorOf(aliceAgain.createSession({ onPermissionRequest: approveAll }))).toEqual(
      quotaError('alice', 1, 1),
    );

    const bob = await sdk(agent, TOKENS.bob);
    const bobs = await bob.createSession({ onPermissionRequest: approveAll });
    expect(bobs.sessionId).toMatch(/^[0-9a-f-]{36}$/);

    await alice.deleteSession(first.sessionId);
    const next = await aliceAgain.createSession({ onPermissionRequest: approveAll });
    expect(next.sessionId).not.toBe(first.sessionId);
    expect(await rpcErrorOf(alice.createSession({ onPermissionRequest: approveAll }))).toEqual(
      quotaError('alice', 1, 1),
    );
    // A refused create never reached the CLI and holds nothing: two sessions are loaded, no more.
    const readyz = (await fetch(`${agent.adminUrl}/readyz`).then((r) => r.json())) as { sessions: number };
    expect(readyz.sessions).toBe(2);
  });

  it('counts a resume and concurrent creates against the quota too', async () => {
    const agent = await agentWith({ sessionsPerInstance: 5, sessionsPerPrincipal: 2 });
    const alice = await sdk(agent, TOKENS.alice);
    // A saved session (one full turn), let go of: it no longer holds a place.
    const saved = await modelSession(alice);
    expect((await saved.sendAndWait({ prompt: 'keep me' }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
    await saved.disconnect();

    const outcomes = await Promise.allSettled(
      [1, 2, 3].map(() => alice.createSession({ onPermissionRequest: approveAll })),
    );
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(2);
    const refused = outcomes.find((o) => o.status === 'rejected');
    expect(await rpcErrorOf(Promise.reject(refused?.reason))).toEqual(quotaError('alice', 2, 2));

    // Resuming takes a place like creating does.
    expect(
      await rpcErrorOf(
        alice.resumeSession(saved.sessionId, { onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) }),
      ),
    ).toEqual(quotaError('alice', 2, 2));
    const [one] = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    await alice.deleteSession(one!.sessionId);
    const resumed = await alice.resumeSession(saved.sessionId, {
      onPermissionRequest: approveAll,
      ...fakeModelSessionOptions(model),
    });
    expect((await resumed.getEvents()).filter((e) => e.type === 'assistant.message')).toHaveLength(1);
  });
});

describe('Copilot front: tenants without --redis', () => {
  const ADMIN_TOKEN = 'admin-token-copilot-tenants-41c7';
  const fleetSessions = (agent: CopilotAgent, query = '') =>
    fetch(`${agent.adminUrl}/admin/fleet/sessions${query}`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    }).then((r) => r.json());
  const tenantQuota = (tenant: string, limit: number) => ({
    code: -31020,
    message: `tenant "${tenant}" holds ${limit} sessions, the sessionsPerTenant quota (${limit}): end one of your tenant's sessions first`,
    data: { code: 'TENANT_QUOTA_REACHED', status: 429, quota: 'sessionsPerTenant', limit, tenant },
  });

  it('holds the users of a tenant to sessionsPerTenant together; a user without a tenant belongs to --tenant; a delete frees the place', async () => {
    const agent = await agentWith(
      { sessionsPerInstance: 6, sessionsPerTenant: 2 },
      {
        principals: {
          [TOKENS.alice]: { principal: 'alice', tenant: 'acme' },
          [TOKENS.bob]: { principal: 'bob', tenant: 'acme' },
          [TOKENS.carol]: 'carol',
        },
        extraArgs: ['--tenant', 'globex', '--admin-token', ADMIN_TOKEN],
      },
    );
    const alice = await sdk(agent, TOKENS.alice);
    const bob = await sdk(agent, TOKENS.bob);
    await alice.createSession({ onPermissionRequest: approveAll });
    const bobs = await bob.createSession({ onPermissionRequest: approveAll });
    expect(await rpcErrorOf(alice.createSession({ onPermissionRequest: approveAll }))).toEqual(tenantQuota('acme', 2));

    // carol has no tenant of her own: she is globex's (--tenant), which has places of its own.
    const carol = await sdk(agent, TOKENS.carol);
    await carol.createSession({ onPermissionRequest: approveAll });
    await carol.createSession({ onPermissionRequest: approveAll });
    expect(await rpcErrorOf(carol.createSession({ onPermissionRequest: approveAll }))).toEqual(
      tenantQuota('globex', 2),
    );

    // bob's delete gives acme a place back, which alice takes.
    await bob.deleteSession(bobs.sessionId);
    const next = await alice.createSession({ onPermissionRequest: approveAll });
    expect(next.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await rpcErrorOf(bob.createSession({ onPermissionRequest: approveAll }))).toEqual(tenantQuota('acme', 2));

    const inventory = (await fleetSessions(agent)) as {
      sessions: Array<{ principal: string; tenant: string }>;
    };
    expect(inventory.sessions.map((s) => `${s.principal}@${s.tenant}`).sort()).toEqual([
      'alice@acme',
      'alice@acme',
      'carol@globex',
      'carol@globex',
    ]);
  });

  it('under tenant isolation, refuses a user of another tenant at connect (TENANT_FORBIDDEN) and serves its own', async () => {
    const agent = await agentWith(
      { isolation: 'tenant' },
      {
        principals: {
          [TOKENS.alice]: { principal: 'alice', tenant: 'acme' },
          [TOKENS.bob]: 'bob',
          [TOKENS.carol]: { principal: 'carol', tenant: 'globex' },
        },
        extraArgs: ['--tenant', 'acme', '--admin-token', ADMIN_TOKEN],
      },
    );
    const forbidden = {
      code: -31021,
      message:
        'principal "carol" belongs to tenant "globex", and this instance serves another tenant only (tenant isolation): use your own tenant\'s instances',
      data: { code: 'TENANT_FORBIDDEN', status: 403, tenant: 'globex' },
    };
    const carol = new CopilotClient({
      connection: RuntimeConnection.forUri(agent.address, { connectionToken: TOKENS.carol }),
    });
    clients.push(carol);
    expect(await rpcErrorOf(carol.start())).toEqual(forbidden);
    const rawCarol = await openRawClient(agent.clientPort);
    raws.push(rawCarol);
    expect((await rawCarol.call('connect', { token: TOKENS.carol }, 3)).error).toEqual(forbidden);
    await rawCarol.closed;

    // alice (acme's by her entry) and bob (acme's as the instance's tenant) are served.
    const alice = await sdk(agent, TOKENS.alice);
    const bob = await sdk(agent, TOKENS.bob);
    const session = await alice.createSession({ onPermissionRequest: approveAll });
    await bob.createSession({ onPermissionRequest: approveAll });
    const line = await agent.waitForLog((l) => l.msg === 'refused a Copilot client of another tenant');
    expect(line).toMatchObject({ principal: 'carol', tenant: 'globex' });
    const inventory = (await fleetSessions(agent, '?tenant=acme')) as {
      sessions: Array<{ id: string; principal: string }>;
    };
    expect(inventory.sessions.map((s) => s.principal).sort()).toEqual(['alice', 'bob']);
    expect(inventory.sessions.map((s) => s.id)).toContain(session.sessionId);
    for (const token of Object.values(TOKENS)) expect(agent.output()).not.toContain(token);
  });
});

describe('Copilot front: draining and health', () => {
  it('SIGTERM: no new sessions or connections, the turn in flight finishes, sessions are detached, then exit 0', async () => {
    const agent = await agentWith({ drainTimeoutSeconds: 20 });
    const alice = await sdk(agent, TOKENS.alice);
    const session = await modelSession(alice);
    model.hold();
    const before = model.completions;
    const idle = nextIdle(session);
    await session.send({ prompt: 'finish me while draining' });
    await eventually(() => model.completions > before, 15_000, 'the turn reached the model');

    agent.process.kill('SIGTERM');
    await agent.waitForLog((l) => l.msg === 'draining');
    expect(await rpcErrorOf(alice.createSession({ onPermissionRequest: approveAll }))).toEqual({
      code: -31016,
      message:
        'this instance is shutting down and takes no new sessions or turns: retry; another instance will take the session',
      data: { code: 'DRAINING', status: 503 },
    });
    const readyz = await fetch(`${agent.adminUrl}/readyz`);
    expect(readyz.status).toBe(503);
    expect(await readyz.json()).toMatchObject({ reasons: ['draining'] });
    const late = await openRawClient(agent.clientPort).then(
      async (c) => {
        await c.closed;
        return 'closed';
      },
      (error: NodeJS.ErrnoException) => error.code,
    );
    expect(['closed', 'ECONNREFUSED']).toContain(late);
    expect(agent.process.exitCode).toBeNull();

    model.release();
    await idle;
    expect(await agent.exited()).toBe(0);
    expect(agent.logs().map((l) => l.msg)).toContain('agent stopped');
    expect(agent.logs().map((l) => l.msg)).not.toContain('drain timed out');
    await agent.waitForLog(
      (l) => l.msg === 'session ended' && l.sessionId === session.sessionId && l.reason === 'drained',
    );

    // Detached, not lost: the CLI unloaded it and can resume it with the whole turn.
    await eventually(async () => !(await loadedOnCli(session.sessionId)), 5000, 'the CLI unloaded the session');
    const direct = await raw(cli.port, cli.token);
    await direct.request('session.resume', { sessionId: session.sessionId });
    const { events } = (await direct.request('session.getMessages', { sessionId: session.sessionId })) as {
      events: Array<{ type: string; data: { content?: string } }>;
    };
    expect(events.filter((e) => e.type === 'assistant.message').map((e) => e.data.content)).toEqual([FAKE_MODEL_REPLY]);
    await direct.request('session.detach', { sessionId: session.sessionId });
  });

  it('a wrong --upstream-token: clients are told the CLI is unavailable, readiness fails, the log says why once', async () => {
    const agent = await agentWith({}, { upstreamToken: 'not-the-cli-token-0000' });
    const client = await openRawClient(agent.clientPort);
    raws.push(client);
    expect((await client.call('connect', { token: TOKENS.alice })).error).toEqual({
      code: -31018,
      message: 'the agent could not authenticate to the Copilot CLI: retry shortly',
      data: { code: 'UPSTREAM_UNAVAILABLE', status: 502 },
    });
    await client.closed;
    const readyz = await fetch(`${agent.adminUrl}/readyz`).then((r) => r.json());
    expect(readyz).toMatchObject({ status: 'not ready', reasons: ['upstream is not answering'] });
    await new Promise((r) => setTimeout(r, 600)); // three more probes
    const refusals = agent
      .logs()
      .filter((l) => String(l.msg).startsWith("the Copilot CLI refused the agent's token (wrong token)"));
    expect(refusals).toHaveLength(1);
    expect(agent.output()).not.toContain('not-the-cli-token-0000');
  });

  // Kills the file's CLI: keep it last.
  it('the CLI killed: clients are disconnected, /readyz fails at once and /healthz after the threshold', async () => {
    // A short threshold (the helper's default is 5 s): /healthz is awaited for at most 10 s below.
    const agent = await agentWith({}, { unhealthyAfterMs: 1500 });
    const client = await raw(agent.clientPort, TOKENS.alice);
    expect(await client.request('ping', {})).toMatchObject({ message: expect.stringContaining('pong') });
    expect((await fetch(`${agent.adminUrl}/readyz`)).status).toBe(200);

    await cli.stop('SIGKILL');
    await client.closed;
    const readyz = await eventually(
      async () => {
        const r = await fetch(`${agent.adminUrl}/readyz`);
        return r.status === 503 ? r.json() : undefined;
      },
      5000,
      '/readyz failing',
    );
    expect(readyz).toMatchObject({ status: 'not ready', reasons: ['upstream is not answering'] });
    await agent.waitForLog((l) => l.msg === 'upstream is not answering');
    const healthz = await eventually(
      async () => {
        const r = await fetch(`${agent.adminUrl}/healthz`);
        return r.status === 503 ? r.json() : undefined;
      },
      10_000,
      '/healthz failing',
    );
    expect(healthz).toMatchObject({ status: 'unhealthy', upstreamUp: false });

    // A new client is told the CLI is unreachable, and the agent closes its connection.
    const late = await openRawClient(agent.clientPort);
    raws.push(late);
    expect((await late.call('connect', { token: TOKENS.alice })).error).toEqual({
      code: -31018,
      message: 'the agent cannot reach the Copilot CLI: retry shortly',
      data: { code: 'UPSTREAM_UNAVAILABLE', status: 502 },
    });
    await late.closed;
    expect(agent.process.exitCode).toBeNull();
  });
});
