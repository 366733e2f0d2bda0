/**
 * Issue 14 against the real Copilot CLI: bob must not reach alice's session through the host the
 * CLI runs on (`session.shell.exec` on his own session, reading her saved state), and a session id
 * that is not one path segment is INVALID_SESSION_ID. One CLI, two agents in front of it: the
 * default policy, and one that opts in to host access — the second shows the path is real (bob
 * does read alice's prompt there), so the refusal on the first is what protects her.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
} from '../../helpers/copilot-fake-model.js';
import { eventually, openRawClient, type RawRpcClient } from '../../helpers/copilot-rpc.js';

const TOKENS = { alice: 'alice-token-host-4b1e9d', bob: 'bob-token-host-8c2f0a' } as const;
const POLICY = { affinity: { type: 'copilot-jsonrpc' }, sessionsPerInstance: 5 };
const SECRET = `alice-secret-${randomUUID()}`;

let cli: CopilotCli;
let model: FakeModel;
let guarded: CopilotAgent;
let open: CopilotAgent;
let alice: CopilotClient;
let aliceSession: string;
const raws: RawRpcClient[] = [];
const lootDir = mkdtempSync(join(tmpdir(), 'sessionfleet-host-access-'));

beforeAll(async () => {
  [cli, model] = await Promise.all([startCopilotCli(), startFakeModel()]);
  const principals = { [TOKENS.alice]: 'alice', [TOKENS.bob]: 'bob' };
  [guarded, open] = await Promise.all([
    startCopilotAgent({ policy: POLICY, upstreamPort: cli.port, upstreamToken: cli.token, principals }),
    startCopilotAgent({
      policy: { ...POLICY, copilotHostAccess: true },
      upstreamPort: cli.port,
      upstreamToken: cli.token,
      principals,
    }),
  ]);
  alice = new CopilotClient({
    connection: RuntimeConnection.forUri(guarded.address, { connectionToken: TOKENS.alice }),
  });
  const session = await alice.createSession({ onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) });
  expect((await session.sendAndWait({ prompt: SECRET }, 30_000))?.data.content).toBe(FAKE_MODEL_REPLY);
  aliceSession = session.sessionId;
});

afterAll(async () => {
  await Promise.all(raws.splice(0).map((r) => r.close()));
  await alice?.stop().catch(() => []);
  await Promise.all([guarded?.dispose(), open?.dispose()]);
  await model?.close();
  await cli?.dispose();
  rmSync(lootDir, { recursive: true, force: true });
});

async function bobOn(agent: CopilotAgent): Promise<{ bob: RawRpcClient; own: string }> {
  const bob = await openRawClient(agent.clientPort);
  raws.push(bob);
  expect((await bob.call('connect', { token: TOKENS.bob })).error).toBeUndefined();
  const own = randomUUID();
  expect((await bob.call('session.create', { sessionId: own })).error).toBeUndefined();
  return { bob, own };
}

/** A command that copies alice's saved event log where the test can look: what bob would exfiltrate. */
function copyAlicesState(): { command: string; loot: string } {
  const loot = join(lootDir, `${randomUUID()}.txt`);
  return { command: `cat ${join(cli.sessionStateDir, aliceSession, 'events.jsonl')} > ${loot}`, loot };
}
const read = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : '');

describe('Copilot front: host access (issue 14)', () => {
  it("bob's session.shell.exec on his own session cannot read alice's state: refused before the CLI runs it", async () => {
    const { bob, own } = await bobOn(guarded);
    const { command, loot } = copyAlicesState();
    const reply = await bob.call('session.shell.exec', { sessionId: own, command });
    expect(reply.error).toEqual({
      code: -31014,
      message:
        '"session.shell.exec" reaches the host the Copilot CLI runs on (shell), which holds other users\' session state under this policy; the policy field copilotHostAccess opts in: this method is not available through the agent',
      data: { code: 'METHOD_FORBIDDEN', status: 403, method: 'session.shell.exec', host: 'shell' },
    });
    for (const method of ['session.debug.collectLogs', 'session.mcp.list', 'session.plugins.list']) {
      expect((await bob.call(method, { sessionId: own })).error?.data).toMatchObject({
        code: 'METHOD_FORBIDDEN',
        method,
      });
    }
    // The command never ran (give one that did run time to finish): 0 bytes of alice's state.
    await new Promise((r) => setTimeout(r, 2000));
    expect(existsSync(loot)).toBe(false);
    expect(JSON.stringify(bob.inbound)).not.toContain(SECRET);
  });

  it('where the policy opts in, the same call does read her prompt: the refusal above is what protects it', async () => {
    const { bob, own } = await bobOn(open);
    const { command, loot } = copyAlicesState();
    const reply = await bob.call('session.shell.exec', { sessionId: own, command });
    expect(reply.error).toBeUndefined();
    await eventually(() => read(loot).includes(SECRET), 20_000, "the shell copied alice's state");
  });

  it.each([
    ['a trailing slash', (id: string) => `${id}/`],
    ['a parent step', (id: string) => `${id}/../${randomUUID()}`],
  ])('a session id with %s is INVALID_SESSION_ID, never looked up', async (_name, mangle) => {
    const { bob } = await bobOn(guarded);
    const sessionId = mangle(aliceSession);
    const reply = await bob.call('session.resume', { sessionId });
    expect(reply.error).toEqual({
      code: -32602,
      message:
        'params.sessionId of session.resume is not a valid session id (it contains "/" or "\\" (a session id names one directory)): use 1-128 visible ASCII characters',
      data: { code: 'INVALID_SESSION_ID', status: 400, method: 'session.resume' },
    });
  });
});
