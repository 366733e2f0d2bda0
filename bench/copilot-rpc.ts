/**
 * Round trips per second to a real Copilot CLI (`copilot --headless`), straight and through the
 * agent: `ping` with 1, 16 and 64 requests in flight, and `session.create` + `session.delete` one
 * after the other. One run, bounded: every phase lasts BENCH_PHASE_MS (1.5 s), BENCH_ROUNDS (3)
 * times per side, about 40 s in all. Run with `npx tsx bench/copilot-rpc.ts` (the CLI runs
 * offline; nothing leaves the machine).
 */
import { randomUUID } from 'node:crypto';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { startCopilotAgent } from '../test/helpers/copilot-agent.js';
import { startCopilotCli } from '../test/helpers/copilot-cli.js';
import { openRawClient, type RawRpcClient } from '../test/helpers/copilot-rpc.js';

const PHASE_MS = Number(process.env.BENCH_PHASE_MS ?? 1500);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TOKEN = 'bench-token-4f0c2a9e';

let cliVersion = 'unknown';

async function connected(port: number, token: string): Promise<RawRpcClient> {
  const client = await openRawClient(port);
  const answer = (await client.request('connect', { token })) as { version?: string };
  cliVersion = answer.version ?? cliVersion;
  return client;
}

/** Runs `op` in `parallel` loops until the phase ends; returns completed operations per second. */
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

const ping = (client: RawRpcClient) => () => client.request('ping', { message: 'bench' });
const createDelete = (client: RawRpcClient) => async () => {
  const sessionId = randomUUID();
  await client.request('session.create', { sessionId });
  const deleted = (await client.request('session.delete', { sessionId })) as { success?: boolean };
  if (deleted.success !== true) throw new Error(`session.delete failed: ${JSON.stringify(deleted)}`);
};

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/**
 * Direct and through-the-agent phases alternate, ROUNDS times each, and the medians are kept:
 * load from elsewhere on the machine then weighs on both sides alike.
 */
async function compare(
  direct: RawRpcClient,
  through: RawRpcClient,
  parallel: number,
  op: (client: RawRpcClient) => () => Promise<unknown>,
): Promise<[number, number]> {
  const d: number[] = [];
  const t: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    d.push(await rate(parallel, op(direct)));
    t.push(await rate(parallel, op(through)));
  }
  return [median(d), median(t)];
}

async function main() {
  const cli = await startCopilotCli();
  let agent: Awaited<ReturnType<typeof startCopilotAgent>> | undefined;
  try {
    // Logging at the default level (info), as in production.
    agent = await startCopilotAgent({
      policy: { affinity: { type: 'copilot-jsonrpc' }, sessionsPerInstance: 200, concurrencyPerInstance: 200 },
      upstreamPort: cli.port,
      upstreamToken: cli.token,
      principals: { [TOKEN]: 'bench' },
      extraArgs: ['--probe-interval-ms', '2000'],
    });
    const direct = await connected(cli.port, cli.token);
    const through = await connected(agent.clientPort, TOKEN);
    for (const client of [direct, through]) for (let i = 0; i < 500; i++) await client.request('ping', {});
    const rows: Array<[string, number, number]> = [
      ['ping, 1 in flight', ...(await compare(direct, through, 1, ping))],
      ['ping, 16 in flight', ...(await compare(direct, through, 16, ping))],
      ['ping, 64 in flight', ...(await compare(direct, through, 64, ping))],
      ['session.create + session.delete, 1 in flight', ...(await compare(direct, through, 1, createDelete))],
    ];
    const cpu = cpus()[0]?.model ?? 'unknown CPU';
    console.log(
      `Copilot CLI ${cliVersion} — ${availableParallelism()} × ${cpu}, Node ${process.version}, ${PHASE_MS} ms per phase`,
    );
    console.log('| round trip | direct to the CLI (/s) | through the agent (/s) | ratio |');
    console.log('| --- | ---: | ---: | ---: |');
    for (const [name, d, t] of rows) {
      console.log(`| ${name} | ${d.toFixed(0)} | ${t.toFixed(0)} | ${(t / d).toFixed(2)}× |`);
    }
    console.log(`\n(load average ${loadavg()[0]!.toFixed(1)}; ${ROUNDS} alternating rounds per side, medians)`);
  } finally {
    await agent?.dispose();
    await cli.dispose();
  }
}

await main();
