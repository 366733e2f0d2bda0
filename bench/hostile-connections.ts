/**
 * The agent under hostile connections (issue 14 §3, ADR 0017): its resident memory and a witness
 * client's latency while BENCH_HOSTILE (500) hostile connections are open, as ratios to the idle
 * baseline measured in the same run, then the memory once they are gone.
 *
 * - Copilot front (real Copilot CLI behind the agent): half the hostile connections are strangers
 *   that never send `connect` — six of them declare a 63 MiB frame and send 60 MiB of it (the
 *   attack of issue 14), the others stay silent. The witness is an authenticated client's `ping`.
 * - HTTP front (the upstream fixture behind the agent): the other half are POSTs declaring a
 *   1 MiB body and sending one byte a second. The witness is a `GET`.
 *
 * The agents run with their default limits (so the same script measures an agent from before
 * them). The HTTP front runs twice: with `--http-body-gate-bytes 0` (bodies stream from their first
 * byte and hold a slot while they trickle, as before ADR 0023) and with the body gate (the
 * default): the same attack before and after, in one run. One run, about a minute:
 * `npx tsx bench/hostile-connections.ts` (`BENCH_SKIP_COPILOT=1`: the HTTP front only). Timings are
 * medians and 99th percentiles of BENCH_WITNESSES sequential requests; nothing here asserts.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { request } from 'undici';
import { type CopilotAgent, startCopilotAgent } from '../test/helpers/copilot-agent.js';
import { type CopilotCli, startCopilotCli } from '../test/helpers/copilot-cli.js';
import { openRawClient, type RawRpcClient } from '../test/helpers/copilot-rpc.js';
import { spawnAgent, spawnListening, stopAll } from '../test/helpers/http-agent-process.js';

const HOSTILE = Number(process.env.BENCH_HOSTILE ?? 500);
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 12_000);
/** Extra flags for the HTTP agent, e.g. `--http-request-timeout-ms 5000` (an agent from before the limits knows none). */
const HTTP_ARGS = (process.env.BENCH_HTTP_ARGS ?? '').split(' ').filter(Boolean);
const WITNESSES = Number(process.env.BENCH_WITNESSES ?? 200);
const BIG_FRAMES = 6;
const TOKEN = 'bench-token-hostile-77c1';
const MiB = 1024 * 1024;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

interface Witnessed {
  p50: number;
  p99: number;
  statuses: Record<string, number>;
}

/**
 * `count` witness requests one after the other (and more, 50 ms apart, until `until`):
 * milliseconds and what they were answered.
 */
async function witness(count: number, call: () => Promise<string>, until = 0): Promise<Witnessed> {
  const times: number[] = [];
  const statuses: Record<string, number> = {};
  for (let i = 0; i < count || Date.now() < until; i++) {
    if (i >= count) await sleep(50);
    const started = performance.now();
    let status: string;
    try {
      status = await call();
    } catch (error) {
      status = `error: ${error instanceof Error ? error.message.slice(0, 60) : String(error)}`;
    }
    times.push(performance.now() - started);
    statuses[status] = (statuses[status] ?? 0) + 1;
  }
  return { p50: quantile(times, 0.5), p99: quantile(times, 0.99), statuses };
}

/** Samples the process's RSS every 100 ms until stopped; the highest value seen. */
function peakRss(pid: number): { stop(): number } {
  let peak = rssMiB(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMiB(pid));
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rssMiB(pid));
    },
  };
}

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.on('error', () => {});
    // Read (and drop) whatever the agent answers, so its closing the connection is seen.
    socket.resume();
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** A stranger that declares a 63 MiB frame and sends 60 MiB of it, as fast as the agent reads. */
function bigFrame(socket: Socket): void {
  const chunk = Buffer.alloc(256 * 1024, 0x20);
  let sent = 0;
  socket.write(`Content-Length: ${63 * MiB}\r\n\r\n{"jsonrpc":"2.0","id":1,"method":"ping","params":{"message":"`);
  const pump = () => {
    while (sent < 60 * MiB && !socket.destroyed) {
      sent += chunk.length;
      if (!socket.write(chunk)) {
        socket.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

interface Phase {
  rss: number;
  witness: Witnessed;
}

interface Result {
  idle: Phase;
  attack: Phase;
  rssAfter: number;
  /** Hostile connections the agent had closed by the end of the window. */
  closedByAgent: number;
  opened: number;
  extra?: string;
}

async function copilotRun(cli: CopilotCli): Promise<Result> {
  const agent: CopilotAgent = await startCopilotAgent({
    policy: { affinity: { type: 'copilot-jsonrpc' } },
    upstreamPort: cli.port,
    upstreamToken: cli.token,
    principals: { [TOKEN]: 'witness' },
  });
  const pid = agent.process.pid!;
  try {
    const client: RawRpcClient = await openRawClient(agent.clientPort);
    await client.request('connect', { token: TOKEN });
    const ping = async () => {
      const reply = await client.call('ping', { message: 'witness' });
      return reply.error ? String(reply.error.code) : 'ok';
    };
    await witness(50, ping); // warm-up
    await sleep(500);
    const idle = { rss: rssMiB(pid), witness: await witness(WITNESSES, ping) };

    const count = Math.floor(HOSTILE / 2);
    const peak = peakRss(pid);
    const started = Date.now();
    const sockets = await Promise.all(Array.from({ length: count }, () => openSocket(agent.clientPort)));
    let closedByAgent = 0;
    for (const socket of sockets) socket.once('close', () => closedByAgent++);
    sockets.slice(0, BIG_FRAMES).forEach(bigFrame);
    const attackWitness = await witness(WITNESSES, ping, started + WINDOW_MS);
    const attack = { rss: peak.stop(), witness: attackWitness };
    const closedInWindow = closedByAgent;
    for (const socket of sockets) socket.destroy();
    await sleep(3000);
    const rssAfter = rssMiB(pid);
    await client.close();
    return { idle, attack, rssAfter, closedByAgent: closedInWindow, opened: count };
  } finally {
    await agent.dispose();
  }
}

async function httpRun(extraArgs: string[] = []): Promise<Result> {
  const upstream = await spawnListening('test/agent/http/fixtures/upstream.ts');
  const agent = await spawnAgent({
    policy: { affinity: { type: 'none' } },
    upstream: upstream.url,
    args: [...HTTP_ARGS, ...extraArgs],
  });
  const pid = agent.child.pid!;
  const port = Number(new URL(agent.url).port);
  try {
    const get = async () => {
      const response = await request(`${agent.url}/echo`);
      await response.body.dump();
      return String(response.statusCode);
    };
    await witness(50, get);
    await sleep(500);
    const idle = { rss: rssMiB(pid), witness: await witness(WITNESSES, get) };

    const count = HOSTILE - Math.floor(HOSTILE / 2);
    const peak = peakRss(pid);
    const started = Date.now();
    const sockets = await Promise.all(Array.from({ length: count }, () => openSocket(port)));
    let closedByAgent = 0;
    for (const socket of sockets) {
      socket.once('close', () => closedByAgent++);
      socket.write(`POST /echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: ${MiB}\r\n\r\n`);
    }
    const drip = setInterval(() => {
      for (const socket of sockets) if (!socket.destroyed) socket.write('x');
    }, 1000);
    const attackWitness = await witness(WITNESSES, get, started + WINDOW_MS);
    const attack = { rss: peak.stop(), witness: attackWitness };
    const closedInWindow = closedByAgent;
    clearInterval(drip);
    for (const socket of sockets) socket.destroy();
    await sleep(3000);
    const rssAfter = rssMiB(pid);
    // When the slots come back: the first witness answered 200 after the attackers left.
    const back = await witness(5, get);
    return {
      idle,
      attack,
      rssAfter,
      closedByAgent: closedInWindow,
      opened: count,
      extra: `after: ${JSON.stringify(back.statuses)}`,
    };
  } finally {
    await agent.stop('SIGKILL').catch(() => {});
    await stopAll();
  }
}

function report(name: string, r: Result): void {
  const f = (n: number, d = 1) => n.toFixed(d);
  console.log(`\n${name}: ${r.opened} hostile connections, ${WINDOW_MS} ms window`);
  console.log(
    `  RSS idle ${f(r.idle.rss)} MiB, under attack (peak) ${f(r.attack.rss)} MiB = x${f(r.attack.rss / r.idle.rss, 2)}`,
  );
  console.log(`  RSS 3 s after the attackers left ${f(r.rssAfter)} MiB = x${f(r.rssAfter / r.idle.rss, 2)}`);
  console.log(
    `  witness p50 idle ${f(r.idle.witness.p50, 2)} ms, under attack ${f(r.attack.witness.p50, 2)} ms = x${f(r.attack.witness.p50 / r.idle.witness.p50, 2)}`,
  );
  console.log(
    `  witness p99 idle ${f(r.idle.witness.p99, 2)} ms, under attack ${f(r.attack.witness.p99, 2)} ms = x${f(r.attack.witness.p99 / r.idle.witness.p99, 2)}`,
  );
  console.log(
    `  witness answers idle ${JSON.stringify(r.idle.witness.statuses)}, under attack ${JSON.stringify(r.attack.witness.statuses)}`,
  );
  console.log(`  hostile connections closed by the agent within the window: ${r.closedByAgent} of ${r.opened}`);
  if (r.extra) console.log(`  ${r.extra}`);
}

async function main(): Promise<void> {
  console.log(
    `hostile-connections: node ${process.version}, ${cpus()[0]?.model ?? 'cpu'} x${availableParallelism()}, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  if (!process.env.BENCH_SKIP_COPILOT) {
    const cli = await startCopilotCli();
    try {
      report('Copilot front (strangers: 6 x 63 MiB frames, the rest silent)', await copilotRun(cli));
    } finally {
      await cli.dispose();
    }
  }
  const gateOff = ['--http-body-gate-bytes', '0'];
  report(
    `HTTP front (slow bodies: 1 MiB declared, 1 byte/s) ${[...HTTP_ARGS, ...gateOff].join(' ')} (as before ADR 0023)`,
    await httpRun(gateOff),
  );
  report(`HTTP front (slow bodies: 1 MiB declared, 1 byte/s) ${HTTP_ARGS.join(' ')} (body gate)`, await httpRun());
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
