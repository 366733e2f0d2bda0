/**
 * Issue 14 §1, the file system: no app container can read the session state of a principal it is
 * not serving (ADR 0019). Two real Copilot CLIs, each with its agent, on one shared session-state
 * directory; the agents stage each session's state between that directory (the agent's alone, as
 * the constructs mount it) and the CLI's own `~/.copilot/session-state` (the app's private volume).
 * A third CLI has the shared directory as its own session state, as every app had it before: there
 * the same attacks read alice's prompt, which shows they are real and the test can fail.
 *
 * A mount is modelled by what the CLI sees as its session state: the CLIs here share one machine,
 * so the shared directory is not hidden from them the way a volume not mounted into a container
 * is; every path tried is the one an app container has.
 *
 * The policy opts in to host access (`copilotHostAccess`), so the protocol's refusal is out of the
 * way and the file system alone is what is tested.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { approveAll, CopilotClient, RuntimeConnection } from '@github/copilot-sdk';
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
import { eventually, openRawClient, type RawRpcClient } from '../../helpers/copilot-rpc.js';

const TOKENS = { alice: 'alice-token-stage-7d3a1f', bob: 'bob-token-stage-2e9c4b' } as const;
const PRINCIPALS = { [TOKENS.alice]: 'alice', [TOKENS.bob]: 'bob' };
const POLICY = {
  affinity: { type: 'copilot-jsonrpc' },
  sessionsPerInstance: 5,
  sharedSessionState: true,
  copilotHostAccess: true,
};
const SECRET = `alice-secret-${randomUUID()}`;
const LATER = `alice-later-${randomUUID()}`;
/** What bob's commands look for: never the whole secret (its uuid is unknown to him). */
const PATTERN = 'alice-secret-';

const work = mkdtempSync(join(tmpdir(), 'sessionfleet-staging-'));
const shared = join(work, 'shared');
mkdirSync(shared);

let alicesId: string;
/** The HOME of the CLI bob is on: where his model's tools look. */
let targetHome = '';
/** Bob's model: every turn's first completion uses the CLI's own tools on the app's state. */
let hostile: FakeModel;
let plain: FakeModel;
const clis: CopilotCli[] = [];
const agents: CopilotAgent[] = [];
const raws: RawRpcClient[] = [];
const sdks: CopilotClient[] = [];
let a: { cli: CopilotCli; agent: CopilotAgent };
let b: { cli: CopilotCli; agent: CopilotAgent };
/** Today's layout: the shared directory is the app's session state. */
let before: { cli: CopilotCli; agent: CopilotAgent };

async function instance(layout: 'staged' | 'shared-into-app'): Promise<{ cli: CopilotCli; agent: CopilotAgent }> {
  const home = mkdtempSync(join(work, 'home-'));
  mkdirSync(join(home, '.copilot'), { recursive: true });
  if (layout === 'shared-into-app') symlinkSync(shared, join(home, '.copilot', 'session-state'));
  const cli = await startCopilotCli({ home });
  clis.push(cli);
  const agent = await startCopilotAgent({
    policy: POLICY,
    upstreamPort: cli.port,
    upstreamToken: cli.token,
    principals: PRINCIPALS,
    extraArgs:
      layout === 'staged'
        ? ['--session-state-dir', shared, '--app-state-dir', cli.sessionStateDir]
        : ['--session-state-dir', shared],
  });
  agents.push(agent);
  return { cli, agent };
}

function sdk(agent: CopilotAgent, token: string): CopilotClient {
  const client = new CopilotClient({ connection: RuntimeConnection.forUri(agent.address, { connectionToken: token }) });
  sdks.push(client);
  return client;
}

const read = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : '');

beforeAll(async () => {
  [plain, hostile] = await Promise.all([
    startFakeModel(),
    startFakeModel({
      // Small outputs: the CLI hands a large one to the model as a file name, not as content.
      toolCalls: () => [
        {
          name: 'bash',
          arguments: {
            command: `grep -rho "${PATTERN.slice(0, 6)}""${PATTERN.slice(6)}[0-9a-f-]*" $HOME/.copilot/session-state/ | sort -u`,
            description: 'look around',
            mode: 'sync',
            initial_wait: 20,
          },
        },
        {
          name: 'view',
          arguments: {
            path: join(targetHome, '.copilot', 'session-state', alicesId, 'events.jsonl'),
            view_range: [1, 12],
          },
        },
        {
          name: 'grep',
          arguments: {
            pattern: `${PATTERN}[0-9a-f-]{36}`,
            // Her directory only: the whole state directory also holds bob's own events, whose
            // earlier tool results repeat her lines and push the output past the CLI's 20 KB preview.
            paths: [join(targetHome, '.copilot', 'session-state', alicesId)],
            output_mode: 'content',
          },
        },
      ],
    }),
  ]);
  a = await instance('staged');
  b = await instance('staged');
  before = await instance('shared-into-app');
  // Alice's session, one full turn on instance A, then she lets go of it (the CLI saves it).
  const alice = sdk(a.agent, TOKENS.alice);
  const session = await alice.createSession({ onPermissionRequest: approveAll, ...fakeModelSessionOptions(plain) });
  expect((await session.sendAndWait({ prompt: SECRET }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
  alicesId = session.sessionId;
  await session.disconnect();
}, 180_000);

afterAll(async () => {
  await Promise.all(raws.splice(0).map((r) => r.close()));
  await Promise.all(sdks.splice(0).map((c) => c.stop().catch(() => [])));
  await Promise.all(agents.map((agent) => agent.dispose()));
  await Promise.all([plain?.close(), hostile?.close()]);
  await Promise.all(clis.map((cli) => cli.dispose()));
  rmSync(work, { recursive: true, force: true });
});

/** Every way bob's shell reaches the app's session state: alice's log by name, and a search of all. */
function bobsCommand(): string {
  const state = '$HOME/.copilot/session-state';
  return `cat ${state}/${alicesId}/events.jsonl ${state}/*/events.jsonl ${state}/${alicesId}/workspace.yaml; grep -r "${PATTERN}" $HOME/.copilot/session-state`;
}

interface Seen {
  /** What `session.shell.exec` wrote. */
  shell: string;
  /** What each of the model's tools returned to the model, by tool name. */
  tools: Record<string, string>;
  /** Everything that came back to bob or his model, the above included. */
  all: string;
}

/**
 * Bob on `target`, through every host path: `session.shell.exec` (its output copied where the test
 * can read it), the session's workspace files with a path out of his session's directory, and the
 * model's own tools (shell, file view, grep).
 */
async function bobTriesEverything(target: { cli: CopilotCli; agent: CopilotAgent }): Promise<Seen> {
  const bob = await openRawClient(target.agent.clientPort);
  raws.push(bob);
  expect((await bob.call('connect', { token: TOKENS.bob })).error).toBeUndefined();
  const own = randomUUID();
  expect((await bob.call('session.create', { sessionId: own })).error).toBeUndefined();
  const loot = join(work, `loot-${randomUUID()}.txt`);
  const exec = await bob.call('session.shell.exec', { sessionId: own, command: `(${bobsCommand()}) > ${loot} 2>&1` });
  expect(exec.error).toBeUndefined();
  const replies = [JSON.stringify(exec)];
  for (const path of [`../${alicesId}/events.jsonl`, join(target.cli.sessionStateDir, alicesId, 'events.jsonl')]) {
    replies.push(JSON.stringify(await bob.call('session.workspaces.readFile', { sessionId: own, path })));
  }
  // The model's tools, in a session of bob's driven by the SDK (it answers the CLI's permission requests).
  const requestsBefore = hostile.requests.length;
  targetHome = target.cli.home;
  const session = await sdk(target.agent, TOKENS.bob).createSession({
    onPermissionRequest: approveAll,
    ...fakeModelSessionOptions(hostile),
  });
  const reply = await session.sendAndWait({ prompt: 'show me what the other users asked' }, 60_000);
  expect(reply?.data.content).toBe(FAKE_MODEL_REPLY);
  const events = await session.getEvents();
  const tools = toolResultsByName(events);
  expect(Object.keys(tools).sort()).toEqual(['bash', 'grep', 'view']);
  await session.disconnect();
  // The shell command ran (its output file exists) before its output is judged.
  await eventually(() => existsSync(loot), 20_000, "bob's shell command ran");
  await new Promise((r) => setTimeout(r, 500));
  const shell = read(loot);
  const all = [
    shell,
    ...replies,
    ...hostile.requests.slice(requestsBefore),
    JSON.stringify(events),
    JSON.stringify(bob.inbound),
  ].join('\n');
  return { shell, tools, all };
}

describe('Copilot front: session state staged between the shared volume and the app (issue 14, ADR 0019)', () => {
  it("alice's state leaves her instance's app directory when her session leaves it; the shared volume has it", async () => {
    await eventually(() => read(join(shared, alicesId, 'events.jsonl')).includes(SECRET), 20_000, 'written back');
    await eventually(() => !existsSync(join(a.cli.sessionStateDir, alicesId)), 20_000, 'private copy removed');
    expect(read(join(shared, alicesId, 'client-metadata.json'))).toContain('"sessionfleet/owner":"alice"');
  });

  it('where the shared directory is the app’s own (the layout before staging), bob reads her prompt', async () => {
    const seen = await bobTriesEverything(before);
    expect(seen.shell).toContain(SECRET);
    for (const tool of ['bash', 'view', 'grep']) expect(seen.tools[tool], tool).toContain(SECRET);
  });

  it("bob on another instance of the same shared volume reads 0 bytes of alice's state by any host path", async () => {
    const seen = await bobTriesEverything(b);
    expect(seen.all).not.toContain(SECRET);
    // Nothing of hers was ever in that app's directory.
    expect(existsSync(join(b.cli.sessionStateDir, alicesId))).toBe(false);
  });

  it("bob cannot resume alice's session on his instance: nothing of hers is staged for him", async () => {
    const bob = await openRawClient(b.agent.clientPort);
    raws.push(bob);
    expect((await bob.call('connect', { token: TOKENS.bob })).error).toBeUndefined();
    const reply = await bob.call('session.resume', { sessionId: alicesId });
    expect(reply.error?.data).toMatchObject({ code: 'SESSION_FORBIDDEN' });
    expect(existsSync(join(b.cli.sessionStateDir, alicesId))).toBe(false);
  });

  it('alice lists her saved session through another instance (read from the shared volume, nothing staged); bob does not', async () => {
    const alice = sdk(b.agent, TOKENS.alice);
    const bob = sdk(b.agent, TOKENS.bob);
    await Promise.all([alice.start(), bob.start()]);
    const listed = await alice.listSessions();
    const hers = listed.find((session) => session.sessionId === alicesId);
    expect(hers).toBeDefined();
    expect(hers!.isRemote).toBe(false);
    expect(Number.isNaN(hers!.modifiedTime.getTime())).toBe(false);
    expect(hers!.context?.workingDirectory).toBe(a.cli.home);
    // Its metadata too, read by the CLI from a copy staged for the call and removed after it.
    expect(await alice.getSessionMetadata(alicesId)).toMatchObject({ sessionId: alicesId });
    await eventually(() => !existsSync(join(b.cli.sessionStateDir, alicesId)), 10_000, 'the copy removed');
    const bobs = await bob.listSessions();
    expect(bobs.map((session) => session.sessionId)).not.toContain(alicesId);
    expect(JSON.stringify(bobs)).not.toContain(SECRET);
    expect(existsSync(join(b.cli.sessionStateDir, alicesId))).toBe(false);
  });

  it('alice resumes her session on the other instance with its history; each turn and her leaving write it back', async () => {
    const alice = sdk(b.agent, TOKENS.alice);
    const resumed = await alice.resumeSession(alicesId, {
      onPermissionRequest: approveAll,
      ...fakeModelSessionOptions(plain),
    });
    const history = JSON.stringify(await resumed.getEvents());
    expect(history).toContain(SECRET);
    expect(history).toContain(FAKE_MODEL_REPLY);
    expect((await resumed.sendAndWait({ prompt: LATER }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
    // Written back when the turn ended, while the session is still loaded here.
    await eventually(() => read(join(shared, alicesId, 'events.jsonl')).includes(LATER), 20_000, 'turn written back');
    expect(existsSync(join(b.cli.sessionStateDir, alicesId))).toBe(true);
    await resumed.disconnect();
    await eventually(() => !existsSync(join(b.cli.sessionStateDir, alicesId)), 20_000, 'private copy removed');
    const saved = read(join(shared, alicesId, 'events.jsonl'));
    expect(saved).toContain(SECRET);
    expect(saved).toContain(LATER);
  });

  it('an instance that drains (SIGTERM) writes back the sessions it serves and leaves none in the app directory', async () => {
    const alice = sdk(a.agent, TOKENS.alice);
    const resumed = await alice.resumeSession(alicesId, {
      onPermissionRequest: approveAll,
      ...fakeModelSessionOptions(plain),
    });
    expect(JSON.stringify(await resumed.getEvents())).toContain(LATER);
    expect(existsSync(join(a.cli.sessionStateDir, alicesId, 'events.jsonl'))).toBe(true);
    expect(await a.agent.stop('SIGTERM')).toBe(0);
    expect(existsSync(join(a.cli.sessionStateDir, alicesId))).toBe(false);
    expect(read(join(shared, alicesId, 'events.jsonl'))).toContain(LATER);
    expect(a.agent.logs().filter((l) => l.level === 50 || l.level === 'error')).toEqual([]);
  });

  it('alice deletes her saved session through an instance that does not hold it: gone from the shared volume too', async () => {
    const alice = sdk(b.agent, TOKENS.alice);
    await alice.start();
    expect((await alice.listSessions()).map((session) => session.sessionId)).toContain(alicesId);
    await alice.deleteSession(alicesId);
    expect(existsSync(join(shared, alicesId))).toBe(false);
    await eventually(() => !existsSync(join(b.cli.sessionStateDir, alicesId)), 10_000, 'no copy left in the app');
    expect((await alice.listSessions()).map((session) => session.sessionId)).not.toContain(alicesId);
  });
});
