/**
 * Many Copilot clients and sessions on one agent (issue 18 §3): the agent's memory per client and
 * per session, and a witness `ping`'s latency, as ratios to the idle baseline of the same run.
 *
 * One agent process (`copilot-jsonrpc` affinity, `sessionsPerInstance` 200) in front of the real
 * Copilot CLI (`copilot --headless`, offline). BENCH_CLIENTS (200) raw JSON-RPC clients, each its
 * own principal (its own token), `connect`, then each asks for BENCH_SESSIONS_PER_CLIENT (5)
 * sessions (`session.create`) — 1,000 asked for. The policy allows at most 200 sessions on one
 * instance (`sessionsPerInstance` 1–200, SPEC §2), so the agent admits 200 and refuses the rest
 * with SESSION_LIMIT_REACHED (`limits.evictIdleAfterSeconds` 0: no idle session is evicted for
 * them): the run reports both, and the memory per session is over the
 * sessions admitted. Sessions are asked for round by round (every client's first, then every
 * client's second, …) so that every client holds one before any is refused.
 *
 * Phases: idle (the witness's client only), BENCH_CLIENTS clients connected, sessions created,
 * after all are deleted and the clients gone. Per phase: RSS (/proc) and V8 heap in use (the
 * agent's `/metrics`), both after a full collection forced through the agent's inspector, the
 * witness's p50/p99 (BENCH_WITNESSES sequential `ping`s) as ratios to idle. Nothing asserts.
 *
 * Knobs: BENCH_CLIENTS (200), BENCH_SESSIONS_PER_CLIENT (5), BENCH_WITNESSES (300),
 * BENCH_SETTLE_MS (3000). A small run: `BENCH_CLIENTS=20 npx tsx bench/copilot-sessions-memory.ts`.
 */
import { randomUUID } from 'node:crypto';
import { type CopilotAgent, startCopilotAgent } from '../test/helpers/copilot-agent.js';
import { type CopilotCli, startCopilotCli } from '../test/helpers/copilot-cli.js';
import { openRawClient, type RawRpcClient } from '../test/helpers/copilot-rpc.js';
import {
  agentMemory,
  f,
  header,
  INSPECT_FLAG,
  inBatches,
  inspectorUrl,
  load,
  type Memory,
  openInspector,
  perItemKiB,
  sleep,
  type Witnessed,
  witness,
} from './mem-common.js';

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 200);
const PER_CLIENT = Number(process.env.BENCH_SESSIONS_PER_CLIENT ?? 5);
const WITNESSES = Number(process.env.BENCH_WITNESSES ?? 300);
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 3000);
const SESSIONS_PER_INSTANCE = 200;
const WITNESS_TOKEN = 'bench-token-witness-51e0';
const clientToken = (i: number) => `bench-token-client-${i}-7a3d`;

interface Phase {
  name: string;
  memory: Memory;
  witness: Witnessed;
  clients: number;
  sessions: number;
}

async function main(): Promise<void> {
  console.log(header('copilot-sessions-memory'));
  const cli: CopilotCli = await startCopilotCli();
  let agent: CopilotAgent | undefined;
  const clients: RawRpcClient[] = [];
  try {
    const principals: Record<string, string> = { [WITNESS_TOKEN]: 'witness' };
    for (let i = 0; i < CLIENTS; i++) principals[clientToken(i)] = `client-${i}`;
    agent = await startCopilotAgent({
      policy: {
        affinity: { type: 'copilot-jsonrpc' },
        sessionsPerInstance: SESSIONS_PER_INSTANCE,
        concurrencyPerInstance: 200,
        // A full instance refuses rather than evicts: creating 200 sessions takes minutes on a
        // loaded machine, and the first would otherwise be evicted as idle (120 s) by the later ones.
        limits: { evictIdleAfterSeconds: 0 },
      },
      upstreamPort: cli.port,
      upstreamToken: cli.token,
      principals,
      // The production probe settings (the test helper's 1.5 s makes a CLI slowed by a loaded
      // machine look down, and the agent then refuses creates with UPSTREAM_UNAVAILABLE).
      extraArgs: ['--probe-interval-ms', '2000', '--unhealthy-after-ms', '30000'],
      env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${INSPECT_FLAG}`.trim() },
    });
    const pid = agent.process.pid!;
    const inspector = await openInspector(inspectorUrl(agent.output()));
    const witnessClient = await openRawClient(agent.clientPort);
    const { version } = (await witnessClient.request('connect', { token: WITNESS_TOKEN })) as { version?: string };
    console.log(`  Copilot CLI ${version ?? 'unknown'}`);
    const ping = async () => {
      const reply = await witnessClient.call('ping', { message: 'witness' });
      return reply.error ? String(reply.error.code) : 'ok';
    };
    const phases: Phase[] = [];
    const measure = async (name: string, clientCount: number, sessions: number) => {
      await sleep(SETTLE_MS);
      const memory = await agentMemory(pid, agent!.adminUrl, inspector);
      const phase = { name, memory, witness: await witness(WITNESSES, ping), clients: clientCount, sessions };
      phases.push(phase);
      return phase;
    };

    await witness(500, ping); // warm-up: the JIT, the connection
    const idle = await measure('idle', 0, 0);

    let started = performance.now();
    // Fewer at once than --copilot-max-unauthenticated (128): a connection counts until `connect`.
    await inBatches(CLIENTS, 50, async (i) => {
      const client = await openRawClient(agent!.clientPort);
      await client.request('connect', { token: clientToken(i) });
      clients.push(client);
    });
    console.log(`  ${clients.length} clients connected in ${f((performance.now() - started) / 1000)} s`);
    await measure(`${CLIENTS} clients`, clients.length, 0);

    started = performance.now();
    const created: Array<{ client: RawRpcClient; sessionId: string }> = [];
    const refused: Record<string, number> = {};
    for (let round = 0; round < PER_CLIENT; round++) {
      await inBatches(clients.length, 20, async (i) => {
        const client = clients[i]!;
        const sessionId = randomUUID();
        const reply = await client.call('session.create', { sessionId });
        if (!reply.error) created.push({ client, sessionId });
        else {
          const code = (reply.error.data as { code?: string } | undefined)?.code ?? String(reply.error.code);
          refused[code] = (refused[code] ?? 0) + 1;
        }
      });
    }
    console.log(
      `  session.create asked ${clients.length * PER_CLIENT} times in ${f((performance.now() - started) / 1000)} s: ${created.length} created, refused ${JSON.stringify(refused)}`,
    );
    await measure(`${created.length} sessions`, clients.length, created.length);

    let deleteFailures = 0;
    started = performance.now();
    await inBatches(created.length, 20, async (i) => {
      const { client, sessionId } = created[i]!;
      const reply = await client.call('session.delete', { sessionId });
      if (reply.error) deleteFailures++;
    });
    await Promise.all(clients.splice(0).map((c) => c.close()));
    console.log(
      `  ${created.length} sessions deleted in ${f((performance.now() - started) / 1000)} s (${deleteFailures} failed), clients closed`,
    );
    await sleep(SETTLE_MS);
    await measure('after close', 0, 0);
    inspector.close();
    await witnessClient.close();
    report(idle, phases, created.length, CLIENTS * PER_CLIENT, refused);
  } finally {
    for (const c of clients) c.socket.destroy();
    await agent?.dispose();
    await cli.dispose();
  }
}

function report(idle: Phase, phases: Phase[], created: number, asked: number, refused: Record<string, number>): void {
  console.log(
    '\n| phase | clients | sessions | RSS MiB | heap MiB | RSS per client/session KiB | heap per client/session KiB | witness p50 ms (×idle) | witness p99 ms (×idle) |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  let previous = idle;
  const lines: string[] = [];
  for (const p of phases) {
    // Clients are over idle; sessions over the clients-connected phase before them.
    const items = p.sessions > 0 ? p.sessions : p.clients;
    const base = p.sessions > 0 ? previous : idle;
    const per = (now: number, was: number) => (items > 0 ? f(perItemKiB(now, was, items)) : '—');
    const failures = Object.keys(p.witness.failures).length > 0 ? ` ${JSON.stringify(p.witness.failures)}` : '';
    console.log(
      `| ${p.name} | ${p.clients} | ${p.sessions} | ${f(p.memory.rss)} | ${f(p.memory.heap)} | ${per(p.memory.rss, base.memory.rss)} | ${per(p.memory.heap, base.memory.heap)} | ${f(p.witness.p50, 3)} (×${f(p.witness.p50 / idle.witness.p50, 2)}) | ${f(p.witness.p99, 3)} (×${f(p.witness.p99 / idle.witness.p99, 2)})${failures} |`,
    );
    if (items > 0) {
      lines.push(
        `${p.name}: +${per(p.memory.rss, base.memory.rss)} KiB RSS/+${per(p.memory.heap, base.memory.heap)} KiB heap per ${p.sessions > 0 ? 'session' : 'client'}, witness p50 ×${f(p.witness.p50 / idle.witness.p50, 2)} p99 ×${f(p.witness.p99 / idle.witness.p99, 2)}`,
      );
    }
    previous = p;
  }
  const after = phases[phases.length - 1]!;
  console.log(`\n(load average at the end ${load()})`);
  console.log(
    `copilot-sessions-memory summary: ${lines.join('; ')}; ${created} of ${asked} sessions admitted (refused ${JSON.stringify(refused)}); after close RSS ×${f(after.memory.rss / idle.memory.rss, 2)} heap ×${f(after.memory.heap / idle.memory.heap, 2)} of idle`,
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
