/**
 * The HTTP front's benchmark: one run on one machine, loopback only.
 *
 *   npx tsx bench/http-proxy.ts [--duration 10] [--rounds 3] [--connections 50] [--rate 2000]
 *                               [--streams 5000] [--no-pin] [--memory-only] [--no-memory]
 *                               [--variant='<node flags>' ...] [--agent-variant='<agent flags>' ...]
 *
 * Three targets get the same small JSON POST load: the upstream directly, through the agent (the
 * compiled `sessionfleet-agent`, as deployed: header affinity, 20 sessions, every rule on), and
 * through `@fastify/http-proxy` (a proxy with no rules, its defaults); each proxy also with the
 * recommended young-generation size (and the baseline also with V8's allocation-site pretenuring
 * off, which the agent does to itself at start-up), and each `--variant` adds an agent started with
 * those Node
 * flags (flags that NODE_OPTIONS refuses, such as --min-semi-space-size, work here), each
 * `--agent-variant` an agent started with those agent flags (`--http-body-gate-bytes 0`: the body
 * streamed from its first byte, as before ADR 0023 — a before/after ratio from one run). Two
 * measurements each:
 *
 * - full speed: autocannon, `--connections` connections, `--duration` seconds: requests/s, p50, p99;
 * - fixed rate: `--rate` requests/s over the same connections, paced evenly, latency timed per
 *   request in microseconds (autocannon's rate limiter fires its connections in bursts and its
 *   histogram counts whole milliseconds): the latency a proxy adds when it is not saturated. A
 *   fresh client process runs it after all full-speed runs, the targets taking turns in
 *   one-second slices, and the added latency is each round's difference from the direct path.
 *
 * The targets are measured in `--rounds` interleaved rounds and the median is reported (a shared
 * machine's noise moves single runs by tens of percent). With taskset and two or more CPUs, the
 * proxy under test gets the last CPU to itself and the load generator and the upstream share the
 * others, so the two proxies are compared on equal footing (`--no-pin` turns that off).
 *
 * Then memory: agents in one process started with --expose-gc report the heap after creating
 * idle sessions, and after `--streams` concurrent SSE streams are opened through one of them.
 */
import { execFileSync, fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { Pool } from 'undici';
import { type Spawned, spawnAgent, spawnNode, stopAll } from '../test/helpers/http-agent-process.js';
import { REPO_ROOT } from '../test/helpers/run.js';

const SELF = fileURLToPath(import.meta.url);
const BODY = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: { name: 'echo', arguments: { text: 'hello' } },
});
const SESSIONS = 200;
/** Principals naming themselves in a trusted header, each holding SESSIONS / PRINCIPALS sessions. */
const PRINCIPALS = 50;
const sessionHeader = (n: number) => ({
  'content-type': 'application/json',
  'x-session': `session-${n % SESSIONS}`,
  'x-authenticated-user': `user-${n % PRINCIPALS}`,
});

// Roles: the same file runs the upstream, the baseline proxy and the memory probe.

async function runUpstream(): Promise<void> {
  const server = createServer((req, res) => {
    if (req.url === '/hold') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
      return;
    }
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
    });
    req.on('end', () => {
      const body = `{"jsonrpc":"2.0","id":1,"result":{"received":${size}}}`;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.stdout.write(`${JSON.stringify({ listening: { port: (server.address() as AddressInfo).port } })}\n`);
}

/**
 * A bare TCP relay: bytes in, bytes out, no HTTP at all. Put where the proxies are, it shows what
 * one more process in the path costs on this machine before any proxy does any work.
 */
async function runTcpRelay(upstream: string): Promise<void> {
  const { createServer: createTcpServer, connect } = await import('node:net');
  const { hostname, port } = new URL(upstream);
  const server = createTcpServer({ noDelay: true }, (client) => {
    const up = connect({ host: hostname, port: Number(port), noDelay: true });
    client.pipe(up).pipe(client);
    const close = () => {
      client.destroy();
      up.destroy();
    };
    client.on('error', close).on('close', close);
    up.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.stdout.write(`${JSON.stringify({ listening: { port: (server.address() as AddressInfo).port } })}\n`);
}

/**
 * HAProxy (Debian's `haproxy`, when installed) as a plain HTTP reverse proxy with keep-alive to the
 * upstream and one thread, the proxy the agent is measured against: a C proxy with no rules.
 */
async function startHaproxy(
  upstream: string,
): Promise<{ url: string; pid: number | undefined; stop(): void } | undefined> {
  let binary: string;
  try {
    binary = execFileSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' }).trim();
  } catch {
    console.log('haproxy not installed (apt-get install -y haproxy): its row is left out');
    return undefined;
  }
  const { createServer: createTcpServer, connect } = await import('node:net');
  const port = await new Promise<number>((resolve) => {
    const probe = createTcpServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  const { hostname, port: upstreamPort } = new URL(upstream);
  const dir = mkdtempSync(join(tmpdir(), 'sessionfleet-haproxy-'));
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(
    config,
    [
      'global',
      '  nbthread 1',
      '  maxconn 4096',
      'defaults',
      '  mode http',
      '  option http-keep-alive',
      '  http-reuse always',
      '  timeout connect 5s',
      '  timeout client 60s',
      '  timeout server 60s',
      'frontend clients',
      `  bind 127.0.0.1:${port}`,
      '  default_backend upstream',
      'backend upstream',
      `  server upstream ${hostname}:${upstreamPort}`,
      '',
    ].join('\n'),
  );
  const child = spawn(binary, ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      }).on('error', () => resolve(false));
    });
    if (up) break;
    if (i > 100) throw new Error('haproxy did not start listening');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    stop: () => {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function runFastifyProxy(upstream: string): Promise<void> {
  const { default: Fastify } = await import('fastify');
  const { default: proxy } = await import('@fastify/http-proxy');
  const app = Fastify({ logger: false });
  await app.register(proxy, { upstream });
  await app.listen({ host: '127.0.0.1', port: 0 });
  process.stdout.write(`${JSON.stringify({ listening: { port: (app.server.address() as AddressInfo).port } })}\n`);
}

/**
 * Agents in this process (started with --expose-gc) that report the process's memory when asked
 * over IPC. Several, because one holds at most 200 sessions: too few to weigh one precisely.
 */
async function runMemoryAgents(upstream: string, count: number): Promise<void> {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { parseAgentConfig } = await import('../agent/config.js');
  const { startAgent } = await import('../agent/server.js');
  const file = join(mkdtempSync(join(tmpdir(), 'sessionfleet-bench-')), 'policy.json');
  writeFileSync(
    file,
    JSON.stringify({ affinity: { type: 'header', headerName: 'x-session' }, sessionsPerInstance: 200 }),
  );
  const config = parseAgentConfig([
    '--policy',
    file,
    '--upstream',
    upstream,
    '--listen',
    '127.0.0.1:0',
    '--admin-listen',
    '127.0.0.1:0',
    '--log-level',
    'warn',
  ]);
  const agents: Awaited<ReturnType<typeof startAgent>>[] = [];
  for (let i = 0; i < count; i++) agents.push(await startAgent(config));
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  process.on('message', (message: string) => {
    if (message !== 'measure') return;
    for (let i = 0; i < 4; i++) gc();
    const { heapUsed, rss } = process.memoryUsage();
    process.send?.({ heapUsed, rss, sessions: agents.reduce((n, a) => n + a.context.sessions.size, 0) });
  });
  process.send?.({ ports: agents.map((a) => a.client.port) });
}

// Measurements

interface Full {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  /** CPU time the proxy process spent per request (µs), when measurable: its capacity, unlike req/s, does not depend on what else the machine runs. */
  cpuPerRequest: number;
}

/** `getconf CLK_TCK`: 100 on every Linux Node.js runs on. */
const CLOCK_TICKS = 100;

/** user + system CPU time of a process in ms (Linux `/proc`), or NaN. */
function cpuTimeMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

interface Paced {
  p50: number;
  p99: number;
  count: number;
}

async function fullSpeed(url: string, duration: number, connections: number, pid?: number): Promise<Full> {
  let next = 0;
  const cpuBefore = cpuTimeMs(pid);
  const result = await autocannon({
    url,
    method: 'POST',
    connections,
    duration,
    body: BODY,
    headers: sessionHeader(0),
    // Each connection speaks for one of the 20 sessions (the header means nothing to the others).
    setupClient: (client) => client.setHeaders(sessionHeader(next++)),
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
    cpuPerRequest: ((cpuTimeMs(pid) - cpuBefore) * 1000) / result.requests.total,
  };
}

/**
 * `rate` requests/s spread evenly over the pool's `connections` for `ms` milliseconds, each
 * request timed on its own (µs resolution). The pool stays open between slices: a new connection
 * per slice would time connection set-up, not the proxy.
 */
async function pacedSlice(pool: Pool, ms: number, connections: number, rate: number, into: number[]): Promise<number> {
  const interval = (1000 * connections) / rate;
  const end = performance.now() + ms;
  let failures = 0;
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      await new Promise((resolve) => setTimeout(resolve, (interval * c) / connections));
      let due = performance.now();
      while (performance.now() < end) {
        const start = performance.now();
        const response = await pool.request({ path: '/', method: 'POST', body: BODY, headers: sessionHeader(c) });
        await response.body.dump();
        if (response.statusCode === 200) into.push(performance.now() - start);
        else failures++;
        due += interval;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }),
  );
  return failures;
}

interface PacedJob {
  urls: string[];
  seconds: number;
  connections: number;
  rate: number;
}

/**
 * The fixed-rate client, in a process of its own (autocannon's garbage in the parent would pause
 * it): every target gets a warm-up second, then the targets take turns in one-second slices for
 * `seconds` slices each, so that a burst of noise from the VM's neighbours falls on all of them
 * alike instead of on whichever target happened to be measured at the time.
 */
async function runPacedClient(): Promise<void> {
  const job = await new Promise<PacedJob>((resolve) => process.once('message', (m) => resolve(m as PacedJob)));
  const pools = job.urls.map((url) => new Pool(url, { connections: job.connections }));
  const samples = job.urls.map((): number[] => []);
  let failures = 0;
  for (const pool of pools) failures += await pacedSlice(pool, 1000, job.connections, job.rate, []);
  for (let slice = 0; slice < job.seconds; slice++) {
    for (const [i, pool] of pools.entries()) {
      failures += await pacedSlice(pool, 1000, job.connections, job.rate, samples[i]!);
    }
  }
  await Promise.all(pools.map((pool) => pool.close()));
  const results = samples.map((list): Paced => {
    list.sort((a, b) => a - b);
    const at = (q: number) => list[Math.min(list.length - 1, Math.floor(q * list.length))] ?? Number.NaN;
    return { p50: at(0.5), p99: at(0.99), count: list.length };
  });
  process.send?.({ results, failures });
}

/** One fixed-rate round over all targets, measured by a fresh client process. */
async function pacedRound(urls: string[], seconds: number, connections: number, rate: number): Promise<Paced[]> {
  const client = fork(SELF, ['--role', 'paced-client'], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const answer = new Promise<{ results: Paced[]; failures: number }>((resolve, reject) => {
      client.once('message', (m) => resolve(m as { results: Paced[]; failures: number }));
      client.once('exit', (code) => reject(new Error(`the fixed-rate client exited (${code})`)));
    });
    client.send({ urls, seconds, connections, rate } satisfies PacedJob);
    const { results, failures } = await answer;
    if (failures > 0) throw new Error(`${failures} requests failed at a fixed rate`);
    return results;
  } finally {
    client.kill();
  }
}

/** The agent's garbage collections so far, by kind, from its own `/metrics`. */
async function gcTotals(adminUrl: string): Promise<Record<string, { count: number; seconds: number }>> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const totals: Record<string, { count: number; seconds: number }> = {};
  for (const match of text.matchAll(
    /^sessionfleet_agent_nodejs_gc_duration_seconds_(sum|count)\{[^}]*kind="(\w+)"[^}]*\} (\S+)$/gm,
  )) {
    const kind = match[2]!;
    const entry = totals[kind] ?? { count: 0, seconds: 0 };
    totals[kind] = entry;
    if (match[1] === 'sum') entry.seconds = Number(match[3]);
    else entry.count = Number(match[3]);
  }
  return totals;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

/** Waits for a role's `{"listening"}` line. */
async function listening(spawned: Spawned): Promise<string> {
  const line = await spawned.waitForLine((l) => l.includes('"listening"'));
  return `http://127.0.0.1:${(JSON.parse(line) as { listening: { port: number } }).listening.port}`;
}

/** Moves a process (all its threads) to the given CPUs. */
function pin(pid: number | undefined, cpus: string): void {
  if (pid !== undefined) execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

/** The V8 setting the README recommends for the agent: a young generation big enough for a proxy's garbage. */
const TUNED = '--max-semi-space-size=32';
/** What the agent sets in itself at start-up (`agent/core/v8-tuning.ts`); given to the baseline's tuned run too. */
const NO_PRETENURING = '--no-allocation-site-pretenuring';

/** Resident memory of a process in MiB (Linux `/proc`), or NaN. */
function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return Number(kb) / 1024;
  } catch {
    return Number.NaN;
  }
}

interface Target {
  name: string;
  url: string;
  pid: number | undefined;
  full: Full[];
  fixed: Paced[];
  rss: number;
}

async function compare(
  upstream: string,
  options: {
    duration: number;
    rounds: number;
    connections: number;
    rate: number;
    cpus: number;
    proxyCpu: string | undefined;
    /** Extra agents to compare, each started with these Node/V8 flags (`--variant`). */
    variants: string[];
    /** Extra agents to compare, each started with these agent flags (`--agent-variant`). */
    agentVariants: string[];
  },
): Promise<void> {
  const { duration, rounds, connections, rate, proxyCpu } = options;
  const agentWith = (nodeOptions: string, nodeArgs: string[] = [], agentArgs: string[] = []) =>
    spawnAgent({
      policy: {
        affinity: { type: 'header', headerName: 'x-session' },
        sessionsPerInstance: SESSIONS,
        sessionsPerPrincipal: SESSIONS / PRINCIPALS,
        concurrencyPerInstance: 200,
      },
      upstream,
      args: ['--principal-header', 'x-authenticated-user', '--trusted-proxies', '127.0.0.1/32', ...agentArgs],
      compiled: true,
      env: { NODE_OPTIONS: nodeOptions },
      nodeArgs,
    });
  const fastifyWith = async (nodeOptions: string, nodeArgs: string[] = []) => {
    const spawned = spawnNode([SELF, '--role', 'fastify-proxy', '--upstream', upstream], {
      env: { NODE_OPTIONS: nodeOptions },
      nodeArgs,
    });
    return { url: await listening(spawned), pid: spawned.child.pid };
  };
  const agent = await agentWith('');
  const agentTuned = await agentWith(TUNED);
  const words = (flags: string) => flags.split(/\s+/).filter(Boolean);
  const variants = await Promise.all([
    ...options.variants.map((flags) => agentWith('', words(flags))),
    ...options.agentVariants.map((flags) => agentWith('', [], words(flags))),
  ]);
  const variantNames = [
    ...options.variants.map((flags) => `agent, node ${flags}`),
    ...options.agentVariants.map((flags) => `agent ${flags}`),
  ];
  const fastify = await fastifyWith('');
  const fastifyTuned = await fastifyWith(TUNED, [NO_PRETENURING]);
  const relayProcess = spawnNode([SELF, '--role', 'tcp-relay', '--upstream', upstream]);
  const relay = { url: await listening(relayProcess), pid: relayProcess.child.pid };
  const haproxy = await startHaproxy(upstream);
  process.once('exit', () => haproxy?.stop());
  const proxies = [
    { name: `agent (every rule, ${SESSIONS} sessions)`, url: agent.url, pid: agent.child.pid },
    { name: `  same, NODE_OPTIONS=${TUNED}`, url: agentTuned.url, pid: agentTuned.child.pid },
    { name: '@fastify/http-proxy', url: fastify.url, pid: fastify.pid },
    { name: `  same, ${NO_PRETENURING}, NODE_OPTIONS=${TUNED}`, url: fastifyTuned.url, pid: fastifyTuned.pid },
    ...variants.map((v, i) => ({ name: variantNames[i]!, url: v.url, pid: v.child.pid })),
    ...(haproxy ? [{ name: 'HAProxy (one thread, keep-alive)', url: haproxy.url, pid: haproxy.pid }] : []),
    // Last: the added-p99 comparison below reads it from the end.
    { name: 'TCP relay (no HTTP: one more process)', url: relay.url, pid: relay.pid },
  ];
  if (proxyCpu) for (const proxy of proxies) pin(proxy.pid, proxyCpu);
  const targets: Target[] = [{ name: 'direct to the upstream', url: upstream, pid: undefined }, ...proxies].map(
    (t) => ({
      ...t,
      url: `${t.url}/`,
      full: [],
      fixed: [],
      rss: Number.NaN,
    }),
  );
  console.log(
    `node ${process.version}, ${options.cpus} CPUs${proxyCpu ? `, proxy under test pinned to CPU ${proxyCpu}` : ''}; ${connections} connections, POST ${BODY.length} B JSON; ${rounds} rounds of ${duration} s per target and measurement, medians reported\n`,
  );
  for (const target of targets) await fullSpeed(target.url, 2, connections);

  for (let round = 1; round <= rounds; round++) {
    for (const target of targets) {
      target.full.push(await fullSpeed(target.url, duration, connections, target.pid));
      target.rss = Math.max(Number.isFinite(target.rss) ? target.rss : 0, rssMiB(target.pid));
    }
    const last = targets.map((t) => t.full[t.full.length - 1]!.rps);
    console.log(`round ${round}: req/s ${targets.map((t, i) => `${t.name.trim()} ${fmt(last[i]!, 0)}`).join(', ')}`);
  }
  // The fixed rate after all full-speed runs, so that none of them leaves garbage in a process
  // being timed; each round's targets take turns second by second.
  const agents = [agent, agentTuned, ...variants];
  const agentNames = [proxies[0]!.name, proxies[1]!.name, ...proxies.slice(4, 4 + variants.length).map((p) => p.name)];
  const gcBefore = await Promise.all(agents.map((a) => gcTotals(a.adminUrl)));
  for (let round = 1; round <= rounds; round++) {
    const results = await pacedRound(
      targets.map((t) => t.url),
      duration,
      connections,
      rate,
    );
    for (const [i, target] of targets.entries()) target.fixed.push(results[i]!);
    console.log(
      `round ${round}: fixed-rate p99 ms ${targets.map((t, i) => `${t.name.trim()} ${fmt(results[i]!.p99)}`).join(', ')}`,
    );
  }

  const gcAfter = await Promise.all(agents.map((a) => gcTotals(a.adminUrl)));
  const paced = rounds * duration;
  const gcLines = agents.map((_, i) => {
    const before = gcBefore[i]!;
    const after = gcAfter[i]!;
    const kinds = Object.keys(after)
      .sort()
      .map((kind) => {
        const count = after[kind]!.count - (before[kind]?.count ?? 0);
        const ms = (after[kind]!.seconds - (before[kind]?.seconds ?? 0)) * 1000;
        return count > 0 ? `${kind} ${count}× ${fmt(ms, 1)} ms` : '';
      })
      .filter(Boolean);
    return `${agentNames[i]!.trim()}: ${kinds.join(', ') || 'none'}`;
  });
  const row = (cells: string[], widths: number[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[0]!) : c.padStart(widths[i]!))).join(' ');
  const widths = [52, 8, 7, 7, 7, 10, 11, 9];
  console.log(`\nfull speed, ${connections} connections`);
  console.log(row(['', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'vs direct', 'CPU µs/req', 'RSS MiB'], widths));
  const directRps = median(targets[0]!.full.map((r) => r.rps));
  for (const target of targets) {
    const runs = target.full;
    const rps = median(runs.map((r) => r.rps));
    console.log(
      row(
        [
          target.name,
          fmt(rps, 0),
          fmt(median(runs.map((r) => r.p50)), 0),
          fmt(median(runs.map((r) => r.p99)), 0),
          String(runs.reduce((n, r) => n + r.errors, 0)),
          `${fmt(rps / directRps)}x`,
          fmt(median(runs.map((r) => r.cpuPerRequest)), 1),
          fmt(target.rss, 0),
        ],
        widths,
      ),
    );
  }
  const fixedWidths = [52, 8, 8, 10, 10];
  console.log(`\nfixed rate, ${rate} req/s over ${connections} connections`);
  console.log(row(['', 'p50 ms', 'p99 ms', 'added p50', 'added p99'], fixedWidths));
  const direct = targets[0]!.fixed;
  // Added latency: each round's difference from the direct path measured in the same seconds, then the median.
  const added = (target: Target, q: 'p50' | 'p99') => median(target.fixed.map((r, i) => r[q] - direct[i]![q]));
  for (const target of targets) {
    const p50 = median(target.fixed.map((r) => r.p50));
    const p99 = median(target.fixed.map((r) => r.p99));
    console.log(
      row([target.name, fmt(p50), fmt(p99), fmt(added(target, 'p50')), fmt(added(target, 'p99'))], fixedWidths),
    );
  }
  console.log(
    `agent GC pauses over its ${paced} fixed-rate seconds (prom-client's nodejs_gc_duration_seconds):\n  ${gcLines.join('\n  ')}`,
  );
  const relayTarget = targets[targets.length - 1]!;
  const overRelay = (target: Target) => median(target.fixed.map((r, i) => r.p99 - relayTarget.fixed[i]!.p99));
  console.log(
    `added p99 over the TCP relay (each round's difference, median): agent ${fmt(overRelay(targets[1]!))} ms, tuned ${fmt(overRelay(targets[2]!))} ms`,
  );
  const [, a, aTuned, f, fTuned] = targets as [Target, Target, Target, Target, Target];
  const ratio = (x: Target, y: Target) => {
    const rounds = x.full.map((r, i) => r.rps / y.full[i]!.rps);
    const cpu = median(y.full.map((r) => r.cpuPerRequest)) / median(x.full.map((r) => r.cpuPerRequest));
    return `throughput ${fmt(median(rounds))}x (rounds ${rounds.map((r) => fmt(r)).join(', ')}), by CPU per request ${fmt(cpu)}x`;
  };
  console.log(
    `\nagent / @fastify/http-proxy, each as it starts (the agent sets ${NO_PRETENURING} itself): ${ratio(a, f)}`,
  );
  console.log(`agent / @fastify/http-proxy, both with ${NO_PRETENURING} and ${TUNED}: ${ratio(aTuned, fTuned)}`);
  const haproxyTarget = targets.find((t) => t.name.startsWith('HAProxy'));
  const addedOverDirect = (target: Target) => median(target.fixed.map((r, i) => r.p99 - direct[i]!.p99));
  const relayAdded = addedOverDirect(relayTarget);
  console.log(
    `hot path: agent throughput / HAProxy = ${haproxyTarget ? fmt(median(a.full.map((r, i) => r.rps / haproxyTarget.full[i]!.rps))) : 'n/a'} (aim >= 0.8), ` +
      `agent added p99 / TCP relay added p99 = ${fmt(addedOverDirect(a) / relayAdded)} (aim <= 1.3)`,
  );
  haproxy?.stop();
}

/** Opens `count` SSE streams through `port`, spread over 20 existing sessions; resolves once all answered. */
async function openStreams(port: number, count: number): Promise<IncomingMessage[]> {
  const open: IncomingMessage[] = [];
  // In batches below concurrencyPerInstance: a stream holds a slot until its headers arrive.
  for (let i = 0; i < count; i += 100) {
    const batch = Array.from(
      { length: Math.min(100, count - i) },
      (_, k) =>
        new Promise<IncomingMessage>((resolve, reject) => {
          const req = httpRequest(
            {
              host: '127.0.0.1',
              port,
              path: '/hold',
              agent: false,
              headers: { 'x-session': `idle-${(i + k) % SESSIONS}` },
            },
            (res) => {
              if (res.statusCode !== 200) reject(new Error(`stream ${i + k}: status ${res.statusCode}`));
              res.once('data', () => resolve(res));
            },
          );
          req.on('error', reject);
          req.end();
        }),
    );
    open.push(...(await Promise.all(batch)));
  }
  return open;
}

/**
 * Idle sessions: the same requests on the same connections, first all to one session, then each
 * to a new one (199: with the first they fill the 200 slots); the difference is what the sessions
 * weigh. Then `streams` SSE streams held open through one agent over 20 of those sessions.
 */
async function measureMemory(upstream: string, streams: number): Promise<void> {
  const agents = 25;
  const probe = fork(SELF, ['--role', 'memory-agent', '--upstream', upstream, '--agents', String(agents)], {
    execArgv: ['--expose-gc', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const ask = () =>
      new Promise<{ heapUsed: number; rss: number; sessions: number }>((resolve) => {
        probe.once('message', (m) => resolve(m as { heapUsed: number; rss: number; sessions: number }));
        probe.send('measure');
      });
    const { ports } = await new Promise<{ ports: number[] }>((resolve) =>
      probe.once('message', (m) => resolve(m as { ports: number[] })),
    );
    const pools = ports.map((port) => new Pool(`http://127.0.0.1:${port}`, { connections: 10 }));
    const send = async (session: (n: number) => string) => {
      for (let i = 0; i < 199; i += 10) {
        const statuses = await Promise.all(
          pools.flatMap((pool) =>
            Array.from({ length: Math.min(10, 199 - i) }, async (_, k) => {
              const response = await pool.request({
                path: '/',
                method: 'POST',
                body: BODY,
                headers: { 'x-session': session(i + k) },
              });
              await response.body.dump();
              return response.statusCode;
            }),
          ),
        );
        if (statuses.some((s) => s !== 200)) throw new Error(`memory probe: statuses ${statuses.join(',')}`);
      }
    };
    await send(() => 'warm-up');
    await send(() => 'warm-up');
    const base = await ask();
    await send((n) => `idle-${n}`);
    const idle = await ask();
    await Promise.all(pools.map((pool) => pool.close()));
    const created = idle.sessions - base.sessions;
    console.log(
      `\nmemory per idle session: ${fmt((idle.heapUsed - base.heapUsed) / created, 0)} B of heap (${created} sessions over ${agents} agents in one process)`,
    );
    const open = await openStreams(ports[0]!, streams);
    const withStreams = await ask();
    const heap = withStreams.heapUsed - idle.heapUsed;
    const rss = withStreams.rss - idle.rss;
    console.log(
      `${streams} concurrent SSE streams through one agent: +${fmt(heap / 2 ** 20, 1)} MiB heap, +${fmt(rss / 2 ** 20, 1)} MiB RSS (${fmt(heap / streams / 1024, 1)} KiB heap, ${fmt(rss / streams / 1024, 1)} KiB RSS per stream)`,
    );
    for (const res of open) res.destroy();
  } finally {
    probe.kill();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10' },
      rounds: { type: 'string', default: '3' },
      connections: { type: 'string', default: '50' },
      rate: { type: 'string', default: '2000' },
      streams: { type: 'string', default: '5000' },
      'no-pin': { type: 'boolean', default: false },
      'memory-only': { type: 'boolean', default: false },
      'no-memory': { type: 'boolean', default: false },
      variant: { type: 'string', multiple: true, default: [] },
      'agent-variant': { type: 'string', multiple: true, default: [] },
    },
  });
  const cpus = availableParallelism();
  let canPin = !values['no-pin'] && cpus >= 2;
  if (canPin) {
    try {
      // The load generator (this process) and everything it starts from now on share the other CPUs.
      pin(process.pid, `0-${cpus - 2}`);
    } catch {
      canPin = false;
    }
  }
  try {
    const upstream = await listening(spawnNode([SELF, '--role', 'upstream']));
    if (!values['memory-only']) {
      // The agent runs compiled, as it is deployed.
      execFileSync('npm', ['run', '--silent', 'build'], { cwd: REPO_ROOT, stdio: 'inherit' });
      await compare(upstream, {
        duration: Number(values.duration),
        rounds: Number(values.rounds),
        connections: Number(values.connections),
        rate: Number(values.rate),
        cpus,
        proxyCpu: canPin ? String(cpus - 1) : undefined,
        variants: values.variant,
        agentVariants: values['agent-variant'],
      });
    }
    if (!values['no-memory']) await measureMemory(upstream, Number(values.streams));
  } finally {
    await stopAll();
  }
}

const { values: role } = parseArgs({
  options: { role: { type: 'string' }, upstream: { type: 'string' }, agents: { type: 'string' } },
  strict: false,
});
if (role.role === 'upstream') await runUpstream();
else if (role.role === 'fastify-proxy') await runFastifyProxy(String(role.upstream));
else if (role.role === 'tcp-relay') await runTcpRelay(String(role.upstream));
else if (role.role === 'paced-client') await runPacedClient();
else if (role.role === 'memory-agent') await runMemoryAgents(String(role.upstream), Number(role.agents ?? 1));
else await main();
