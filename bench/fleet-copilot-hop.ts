/**
 * The cost of the fleet's extra hop on the Copilot front: round trips of a session call
 * (`session.getMessages`, answered by the CLI from the loaded session) sent to the agent that
 * owns the session, and the same calls sent to another agent of the fleet, which forwards them to
 * the owner over its hop. Two real CLIs sharing a session-state directory, two agent processes
 * with `--redis` (a private redis-server), one raw client per side; 1 and 16 calls in flight.
 * Phases of BENCH_PHASE_MS (1.5 s), BENCH_ROUNDS (3) times per side, medians kept. Run with
 * `npx tsx bench/fleet-copilot-hop.ts` (offline; loopback only).
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CopilotAgent, startCopilotAgent } from '../test/helpers/copilot-agent.js';
import { type CopilotCli, startCopilotCli } from '../test/helpers/copilot-cli.js';
import { openRawClient, type RawRpcClient } from '../test/helpers/copilot-rpc.js';
import { freePort, startRedisServer } from '../test/helpers/redis-server.js';

const PHASE_MS = Number(process.env.BENCH_PHASE_MS ?? 1500);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TOKEN = 'bench-hop-token-6a1f0d';

async function rate(parallel: number, op: () => Promise<unknown>): Promise<number> {
  const end = Date.now() + PHASE_MS;
  let done = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (Date.now() < end) {
        await op();
        done++;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main() {
  const redis = await startRedisServer();
  const shared = mkdtempSync(join(tmpdir(), 'sessionfleet-bench-shared-'));
  const homes: string[] = [];
  const clis: CopilotCli[] = [];
  const agents: CopilotAgent[] = [];
  try {
    for (const id of ['a', 'b']) {
      const home = mkdtempSync(join(tmpdir(), `sessionfleet-bench-home-${id}-`));
      homes.push(home);
      mkdirSync(join(home, '.copilot'), { recursive: true });
      symlinkSync(shared, join(home, '.copilot', 'session-state'));
      clis.push(await startCopilotCli({ home }));
    }
    for (const [i, id] of ['a', 'b'].entries()) {
      const port = await freePort();
      agents.push(
        await startCopilotAgent({
          policy: { affinity: { type: 'copilot-jsonrpc' }, sessionsPerInstance: 20, sharedSessionState: true },
          upstreamPort: clis[i]!.port,
          upstreamToken: clis[i]!.token,
          principals: { [TOKEN]: 'bench' },
          extraArgs: [
            ['--listen', `127.0.0.1:${port}`],
            ['--advertise', `http://127.0.0.1:${port}`],
            ['--instance-id', id],
            ['--redis', redis.url],
          ].flat(),
        }),
      );
    }
    await new Promise((r) => setTimeout(r, 500));
    const connect = async (agent: CopilotAgent): Promise<RawRpcClient> => {
      const client = await openRawClient(agent.clientPort);
      await client.request('connect', { token: TOKEN });
      return client;
    };
    const owner = await connect(agents[0]!);
    const other = await connect(agents[1]!);
    const sessionId = `bench-${Date.now()}`;
    await owner.request('session.create', { sessionId });
    // The non-owner's first call opens its hop and holds the session there.
    await other.request('session.getMessages', { sessionId });
    const call = (client: RawRpcClient) => () => client.request('session.getMessages', { sessionId });

    console.log(`fleet hop on the Copilot front: ${cpus()[0]?.model ?? 'cpu'} × ${availableParallelism()}`);
    for (const parallel of [1, 16]) {
      const viaOwner: number[] = [];
      const viaOther: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        viaOwner.push(await rate(parallel, call(owner)));
        viaOther.push(await rate(parallel, call(other)));
      }
      const o = median(viaOwner);
      const h = median(viaOther);
      console.log(
        `${parallel} in flight: through the owner ${o.toFixed(0)}/s (${(1000 / o).toFixed(3)} ms), ` +
          `through a non-owner ${h.toFixed(0)}/s (${(1000 / h).toFixed(3)} ms): ratio ${(h / o).toFixed(2)}`,
      );
    }
    await owner.close();
    await other.close();
  } finally {
    await Promise.all(agents.map((a) => a.dispose()));
    await Promise.all(clis.map((c) => c.dispose()));
    await redis.stop();
    for (const dir of [...homes, shared]) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
