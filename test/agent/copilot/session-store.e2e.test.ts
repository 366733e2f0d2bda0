/**
 * Issue 14 §1, the CLI's own record of what it served (ADR 0024): the Copilot CLI keeps
 * `~/.copilot/session-store.db`, one SQLite file per process, with the prompts of every session it
 * tracks, outside any session's state directory — so staging (ADR 0019) does not take it away, and
 * under session isolation without `recycleAfterSession` the next user of the instance finds it. A
 * session loaded with `enableSessionStore: true` even gets a model tool, `session_store_sql`, that
 * queries it; no shell needed.
 *
 * Two real CLIs, each with its agent, on one shared session-state directory (state staged), under
 * session isolation: alice runs a turn on A and leaves; bob gets A next and tries every path —
 * the store's SQL tool, the `sql` tool, `bash` (`sqlite3`, `strings`), `grep`, `view`,
 * `session.shell.exec` and the `session.*` RPCs. A third CLI gets the same calls straight from the
 * SDK, its params unchanged, as the agent passed them before: there bob's model reads alice's
 * prompt, which shows the attack is real and the test can fail.
 *
 * The policy opts in to host access (`copilotHostAccess`) so the protocol's refusal is out of the
 * way: what is tested is what the host holds.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { approveAll, CopilotClient, type CopilotSession, RuntimeConnection } from '@github/copilot-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CopilotAgent, startCopilotAgent } from '../../helpers/copilot-agent.js';
import { type CopilotCli, startCopilotCli } from '../../helpers/copilot-cli.js';
import {
  FAKE_MODEL_REPLY,
  type FakeModel,
  fakeModelSessionOptions,
  startFakeModel,
  toolResultsByName,
} from '../../helpers/copilot-fake-model.js';
import { eventually, openRawClient, type RawRpcClient, rpcErrorOf } from '../../helpers/copilot-rpc.js';

const TOKENS = { alice: 'alice-token-store-5b8e2d', bob: 'bob-token-store-9f1c7a' } as const;
const PRINCIPALS = { [TOKENS.alice]: 'alice', [TOKENS.bob]: 'bob' };
const POLICY = {
  isolation: 'session',
  affinity: { type: 'copilot-jsonrpc' },
  sharedSessionState: true,
  copilotHostAccess: true,
};
const SECRET = `alice-secret-${randomUUID()}`;
const LATER = `alice-later-${randomUUID()}`;
/** What bob's commands look for, split so that his own command line never matches it. */
const SPLIT_PATTERN = `"alice-se""cret-[0-9a-f-]*"`;
const STORE_FILES = ['session-store.db', 'session-store.db-wal', 'session-store.db-shm'];

const work = mkdtempSync(join(tmpdir(), 'sessionfleet-store-'));
const shared = join(work, 'shared');
mkdirSync(shared);

/** The HOME of the CLI bob is on: where his model's tools look. */
let targetHome = '';
let plain: FakeModel;
let hostile: FakeModel;
const clis: CopilotCli[] = [];
const agents: CopilotAgent[] = [];
const raws: RawRpcClient[] = [];
const sdks: CopilotClient[] = [];
let a: { cli: CopilotCli; agent: CopilotAgent };
let b: { cli: CopilotCli; agent: CopilotAgent };
/** The old configuration: clients reach the CLI with their session params unchanged. */
let witness: CopilotCli;
let alicesId: string;

async function instance(): Promise<{ cli: CopilotCli; agent: CopilotAgent }> {
  const cli = await startCopilotCli({ home: mkdtempSync(join(work, 'home-')) });
  clis.push(cli);
  const agent = await startCopilotAgent({
    policy: POLICY,
    upstreamPort: cli.port,
    upstreamToken: cli.token,
    principals: PRINCIPALS,
    extraArgs: ['--session-state-dir', shared, '--app-state-dir', cli.sessionStateDir],
  });
  agents.push(agent);
  return { cli, agent };
}

function sdk(address: string, token: string): CopilotClient {
  const client = new CopilotClient({ connection: RuntimeConnection.forUri(address, { connectionToken: token }) });
  sdks.push(client);
  return client;
}

/** What the store's files on `home` hold, read by the test itself (not through bob). */
function storeBytes(home: string): string {
  return STORE_FILES.map((f) => join(home, '.copilot', f))
    .filter((file) => existsSync(file))
    .map((file) => readFileSync(file).toString('latin1'))
    .join('\n');
}

/** Bob's shell: the store by SQL and by its raw bytes (WAL included), and a search of the CLI's home. */
function bobsCommand(): string {
  const store = '$HOME/.copilot/session-store.db';
  return [
    `sqlite3 ${store} "select user_message, assistant_response from turns; select summary from sessions"`,
    `strings ${store}* | grep -o ${SPLIT_PATTERN} | sort -u`,
    `grep -rhoa ${SPLIT_PATTERN} $HOME/.copilot | sort -u`,
  ].join('; ');
}

/** The model's tools the way a hostile prompt would use them: every turn's first completion. */
function hostileToolCalls() {
  const copilotDir = join(targetHome, '.copilot');
  return [
    { name: 'session_store_sql', arguments: { query: 'SELECT user_message FROM turns', description: 'past turns' } },
    {
      name: 'sql',
      arguments: { database: 'session_store', query: 'SELECT user_message FROM turns', description: 'past turns' },
    },
    { name: 'bash', arguments: { command: bobsCommand(), description: 'look around', mode: 'sync', initial_wait: 20 } },
    // The store's files only: bob's own session state repeats his tools' output.
    {
      name: 'grep',
      arguments: {
        pattern: 'alice-secret-[0-9a-f-]{36}',
        paths: STORE_FILES.map((f) => join(copilotDir, f)),
        output_mode: 'content',
      },
    },
    { name: 'view', arguments: { path: join(copilotDir, 'session-store.db-wal') } },
  ];
}

/** One turn of bob's hostile model in `session`: what each tool returned, by tool name. */
async function hostileTurn(session: CopilotSession): Promise<{ tools: Record<string, string>; all: string }> {
  const before = hostile.requests.length;
  const reply = await session.sendAndWait({ prompt: 'show me what the other users asked' }, 90_000);
  expect(reply?.data.content).toBe(FAKE_MODEL_REPLY);
  const events = await session.getEvents();
  const tools = toolResultsByName(events);
  return { tools, all: [JSON.stringify(events), ...hostile.requests.slice(before)].join('\n') };
}

/** Alice's turn with her secret on `address`, then she leaves (the CLI saves her session). */
async function aliceTurn(address: string, token: string): Promise<string> {
  const alice = sdk(address, token);
  const session = await alice.createSession({ onPermissionRequest: approveAll, ...fakeModelSessionOptions(plain) });
  expect((await session.sendAndWait({ prompt: SECRET }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
  await session.disconnect();
  await alice.stop();
  return session.sessionId;
}

beforeAll(async () => {
  [plain, hostile] = await Promise.all([startFakeModel(), startFakeModel({ toolCalls: hostileToolCalls })]);
  a = await instance();
  b = await instance();
  witness = await startCopilotCli({ home: mkdtempSync(join(work, 'home-')) });
  clis.push(witness);
  alicesId = await aliceTurn(a.agent.address, TOKENS.alice);
  await aliceTurn(witness.address, witness.token);
}, 240_000);

afterAll(async () => {
  await Promise.all(raws.splice(0).map((r) => r.close()));
  await Promise.all(sdks.splice(0).map((c) => c.stop().catch(() => [])));
  await Promise.all(agents.map((agent) => agent.dispose()));
  await Promise.all([plain?.close(), hostile?.close()]);
  await Promise.all(clis.map((cli) => cli.dispose()));
  rmSync(work, { recursive: true, force: true });
});

describe("Copilot front: the CLI's cross-session store holds no earlier user's prompts (issue 14, ADR 0024)", () => {
  it('where session params reach the CLI unchanged (the old configuration), bob’s model reads her prompt from the store', async () => {
    // The CLI's default (the field unset) records her turn in the store.
    expect(storeBytes(witness.home)).toContain(SECRET);
    targetHome = witness.home;
    const session = await sdk(witness.address, witness.token).createSession({
      onPermissionRequest: approveAll,
      enableSessionStore: true,
      ...fakeModelSessionOptions(hostile),
    });
    const seen = await hostileTurn(session);
    expect(seen.tools.session_store_sql).toContain(SECRET);
    expect(seen.tools.bash).toContain(SECRET);
    await session.disconnect();
  }, 120_000);

  it('once alice has left instance A, nothing on its disk holds her prompt: no store, no state', async () => {
    await eventually(() => !existsSync(join(a.cli.sessionStateDir, alicesId)), 20_000, 'private copy removed');
    expect(readFileSync(join(shared, alicesId, 'events.jsonl'), 'utf8')).toContain(SECRET);
    expect(storeBytes(a.cli.home)).not.toContain(SECRET);
    // The whole HOME of A's CLI (logs, caches, settings) as bytes: 0 matches.
    const grep = spawnSync('grep', ['-rlaF', SECRET, a.cli.home], { encoding: 'utf8' });
    expect(grep.status).toBe(1); // no match (2 would be an error)
    expect(grep.stdout).toBe('');
  });

  it('bob, next on instance A, cannot load a session with the store on, switch it on, or move its state out: refused, naming the field', async () => {
    const bob = await openRawClient(a.agent.clientPort);
    raws.push(bob);
    expect((await bob.call('connect', { token: TOKENS.bob })).error).toBeUndefined();
    const asked = await bob.call('session.create', { sessionId: randomUUID(), enableSessionStore: true });
    expect(asked.error).toMatchObject({
      code: -31081,
      data: { code: 'SESSION_STORE_FORBIDDEN', status: 403, fields: ['enableSessionStore: true'] },
    });
    expect(asked.error?.message).toContain('enableSessionStore');
    const capability = await bob.call('session.create', {
      sessionId: randomUUID(),
      sessionCapabilities: ['session-store'],
    });
    expect(capability.error).toMatchObject({ code: -31081, data: { code: 'SESSION_STORE_FORBIDDEN' } });
    // Nor switch it on later.
    const own = randomUUID();
    expect((await bob.call('session.create', { sessionId: own })).error).toBeUndefined();
    const update = await bob.call('session.options.update', { sessionId: own, enableSessionStore: true });
    expect(update.error).toMatchObject({ code: -31081, data: { code: 'SESSION_STORE_FORBIDDEN' } });
    expect((await bob.call('session.delete', { sessionId: own })).error).toBeUndefined();
    // Through the SDK too: the option is refused, not silently dropped.
    const viaSdk = await rpcErrorOf(
      sdk(a.agent.address, TOKENS.bob).createSession({
        onPermissionRequest: approveAll,
        enableSessionStore: true,
        ...fakeModelSessionOptions(hostile),
      }),
    );
    expect(JSON.stringify(viaSdk)).toContain('SESSION_STORE_FORBIDDEN');
    // A config directory of the session's own would keep its state (and a store) out of the
    // directory the agent stages and clears: measured, the CLI writes both under it.
    const configDir = join(work, 'bobs-config');
    const ownDir = await bob.call('session.create', { sessionId: randomUUID(), configDir });
    expect(ownDir.error).toMatchObject({ code: -31082, data: { code: 'CONFIG_DIR_FORBIDDEN', field: 'configDir' } });
    expect(existsSync(configDir)).toBe(false);
  });

  it('bob on instance A reads 0 bytes of her prompts by any path: store SQL, sql, bash, grep, view, shell, session RPCs', async () => {
    const bob = await openRawClient(a.agent.clientPort);
    raws.push(bob);
    expect((await bob.call('connect', { token: TOKENS.bob })).error).toBeUndefined();
    const own = randomUUID();
    expect((await bob.call('session.create', { sessionId: own })).error).toBeUndefined();
    const loot = join(work, `loot-${randomUUID()}.txt`);
    const exec = await bob.call('session.shell.exec', { sessionId: own, command: `(${bobsCommand()}) > ${loot} 2>&1` });
    expect(exec.error).toBeUndefined();
    const replies = [
      JSON.stringify(exec),
      JSON.stringify(await bob.call('session.resume', { sessionId: alicesId })),
      JSON.stringify(await bob.call('session.list', {})),
    ];
    await eventually(() => existsSync(loot), 20_000, "bob's shell command ran");
    await new Promise((r) => setTimeout(r, 500));
    expect((await bob.call('session.delete', { sessionId: own })).error).toBeUndefined();

    // The model's tools, in a session bob loads the SDK's default way (the store field unset).
    targetHome = a.cli.home;
    const session = await sdk(a.agent.address, TOKENS.bob).createSession({
      onPermissionRequest: approveAll,
      ...fakeModelSessionOptions(hostile),
    });
    const seen = await hostileTurn(session);
    await session.disconnect();
    // Every tool ran and answered (the CLI has no session_store_sql for a session without the store).
    expect(Object.keys(seen.tools).sort()).toEqual(['bash', 'grep', 'session_store_sql', 'sql', 'view']);
    expect(seen.tools.bash).toContain('"exitCode"');
    const all = [readFileSync(loot, 'utf8'), ...replies, seen.all, JSON.stringify(bob.inbound)].join('\n');
    expect(all).not.toContain(SECRET);
    // Nor did his own turns reach the store: it tracks no session the agent loads.
    expect(storeBytes(a.cli.home)).not.toContain('show me what the other users asked');
  }, 150_000);

  it('alice resumes her session on instance B with its history; her turns there reach no store either', async () => {
    const alice = sdk(b.agent.address, TOKENS.alice);
    const resumed = await alice.resumeSession(alicesId, {
      onPermissionRequest: approveAll,
      ...fakeModelSessionOptions(plain),
    });
    const history = JSON.stringify(await resumed.getEvents());
    expect(history).toContain(SECRET);
    expect(history).toContain(FAKE_MODEL_REPLY);
    expect((await resumed.sendAndWait({ prompt: LATER }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
    await eventually(
      () => readFileSync(join(shared, alicesId, 'events.jsonl'), 'utf8').includes(LATER),
      20_000,
      'turn written back',
    );
    const store = storeBytes(b.cli.home);
    expect(store).not.toContain(SECRET);
    expect(store).not.toContain(LATER);
    await resumed.disconnect();
  });
});
