/**
 * What the real Copilot CLI does when its agent is killed with SIGKILL, and why the Copilot front
 * needs no reconcile after a restart (ADR 0022): the CLI unloads every session whose last
 * connection closed — the agent's connections die with it — within moments, while the session's
 * state stays on disk with its owner recorded in it. The restarted agent (same instance id, with
 * Redis) releases the registry records of its earlier life; the owner's `session.resume` loads
 * the session again through it, and nobody else's does.
 */
import { approveAll, CopilotClient, RuntimeConnection } from '@github/copilot-sdk';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type CopilotAgent, startCopilotAgent } from '../../helpers/copilot-agent.js';
import { type CopilotCli, startCopilotCli } from '../../helpers/copilot-cli.js';
import { type FakeModel, fakeModelSessionOptions, startFakeModel } from '../../helpers/copilot-fake-model.js';
import { openRawClient, rpcErrorOf } from '../../helpers/copilot-rpc.js';
import { uniqueFleet } from './helpers.js';

const TOKENS = { alice: 'alice-token-reconcile-41c9e2', bob: 'bob-token-reconcile-7d03aa' } as const;

let cli: CopilotCli;
let model: FakeModel;
const agents: CopilotAgent[] = [];
const clients: CopilotClient[] = [];

beforeAll(async () => {
  [cli, model] = await Promise.all([startCopilotCli(), startFakeModel()]);
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.forceStop().catch(() => {})));
  await Promise.all(agents.splice(0).map((a) => a.dispose()));
  await model?.close();
  await cli?.dispose();
});

async function agent(fleet: string): Promise<CopilotAgent> {
  const started = await startCopilotAgent({
    policy: { affinity: { type: 'copilot-jsonrpc' } },
    upstreamPort: cli.port,
    upstreamToken: cli.token,
    principals: { [TOKENS.alice]: 'alice', [TOKENS.bob]: 'bob' },
    extraArgs: ['--redis', inject('redisUrl'), '--fleet', fleet, '--instance-id', 'copilot-reconcile'],
  });
  agents.push(started);
  return started;
}

async function sdk(through: CopilotAgent, token: string): Promise<CopilotClient> {
  const client = new CopilotClient({
    connection: RuntimeConnection.forUri(through.address, { connectionToken: token }),
  });
  clients.push(client);
  await client.start();
  return client;
}

/** Whether the CLI has the session loaded, asked on a connection of our own straight to the CLI. */
async function loadedOnCli(sessionId: string): Promise<boolean> {
  const direct = await openRawClient(cli.port);
  try {
    const connected = await direct.call('connect', { token: cli.token });
    if (connected.error) throw new Error(connected.error.message);
    const reply = await direct.call('session.getMessages', { sessionId });
    if (reply.error && /Session not found/.test(reply.error.message)) return false;
    if (reply.error) throw new Error(reply.error.message);
    return true;
  } finally {
    await direct.close();
  }
}

describe('the Copilot CLI after its agent is SIGKILLed', () => {
  it('unloads the sessions within moments and keeps their state: the owner resumes through the restarted agent, nobody else can', async () => {
    const fleet = uniqueFleet();
    const first = await agent(fleet);
    const alice = await sdk(first, TOKENS.alice);
    const session = await alice.createSession({ onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) });
    const id = session.sessionId;
    // One whole turn (offline fake model), so the session has saved state to resume from.
    await session.sendAndWait({ prompt: 'remember this' });
    expect(await loadedOnCli(id)).toBe(true);

    const killedAt = Date.now();
    first.process.kill('SIGKILL');
    await first.exited();
    // Measured, not assumed: how long the CLI keeps the session loaded once its connections died.
    let unloadedAfterMs = -1;
    while (Date.now() - killedAt < 15_000) {
      if (!(await loadedOnCli(id))) {
        unloadedAfterMs = Date.now() - killedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(`copilot CLI unloaded the session ${unloadedAfterMs} ms after the agent's SIGKILL`);
    expect(unloadedAfterMs).toBeGreaterThanOrEqual(0);
    await alice.forceStop().catch(() => {});

    const restarted = await agent(fleet);
    // No reconcile for this front: the records of the earlier life are released by the resync.
    await restarted.waitForLog((l) => l.msg === 'registered with the fleet');
    expect(restarted.logs().some((l) => String(l.msg).startsWith('reconciled the sessions'))).toBe(false);

    // Bob cannot take it over by resuming it; alice resumes it and it answers.
    const bob = await sdk(restarted, TOKENS.bob);
    const refused = await rpcErrorOf(
      bob.resumeSession(id, { onPermissionRequest: approveAll, ...fakeModelSessionOptions(model) }),
    );
    expect(refused.message).toContain(`session ${JSON.stringify(id)} belongs to another user`);
    expect(await loadedOnCli(id)).toBe(false);
    const again = await sdk(restarted, TOKENS.alice);
    const resumed = await again.resumeSession(id, {
      onPermissionRequest: approveAll,
      ...fakeModelSessionOptions(model),
    });
    expect(resumed.sessionId).toBe(id);
    expect(await loadedOnCli(id)).toBe(true);
  });
});
