/**
 * What OpenTelemetry tracing costs the HTTP front's hot path, as ratios from one run (ADR 0026):
 *
 *   npx tsx bench/tracing-cost.ts [--duration 1] [--rounds 30] [--connections 20] [--warmup 15]
 *
 * Five agent processes from source, each in front of the same loopback upstream (header
 * affinity, 20 sessions, as `bench/http-proxy.ts` loads it: the same small JSON-RPC POST):
 *
 *   - off, off': two agents with no `OTEL_*` variables — the same build twice, so their ratio is
 *     the run's noise band: a cost of "off" smaller than that band is not measurable;
 *   - on: an agent exporting its spans over OTLP/HTTP to a receiver on loopback (in this process;
 *     it reads and drops what it gets), under the same load;
 *   - off, 2026: an untraced agent loaded with MCP 2026 POSTs (`Mcp-Method`, a body whose
 *     `params._meta` carries a `traceparent`): what the modern request path costs by itself;
 *   - on, _meta: a traced agent with that same load: no `traceparent` header, so the agent reads
 *     each body before routing it and continues its `_meta` (compared with "off, 2026").
 *
 * Autocannon at full speed, `--connections` connections, in short slices of `--duration` seconds:
 * each round gives every target one slice (in alternating order), over `--rounds` rounds. Printed:
 * the medians of requests/s, p99 latency and the agent process's CPU time per request (Linux
 * `/proc`), and for each target the median over the rounds of its ratio to "off" in the same
 * round — a shared machine's load swings by several times within a minute, and short paired
 * slices are what keeps that out of the ratios.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { type Spawned, spawnNode, stopAll } from '../test/helpers/http-agent-process.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '30' },
    connections: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '15' },
  },
});
const DURATION = Number(values.duration);
const ROUNDS = Number(values.rounds);
const CONNECTIONS = Number(values.connections);
const WARMUP = Number(values.warmup);
const SESSIONS = 20;
const POLICY = { affinity: { type: 'header', headerName: 'x-session' }, sessionsPerInstance: 50 };
const BODY = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: { name: 'echo', arguments: { text: 'hello' } },
});
const META_BODY = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: {
    name: 'echo',
    arguments: { text: 'hello' },
    _meta: {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01',
    },
  },
});

/** user + system CPU time of a process in ms (Linux `/proc`, 100 ticks a second), or NaN. */
function cpuTimeMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

// The upstream: answers every POST once its body is in.
const upstream = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 35 });
    res.end('{"jsonrpc":"2.0","id":1,"result":{}}'.slice(0, 35));
  });
});
upstream.keepAliveTimeout = 60_000;
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

// The OTLP/HTTP receiver: reads each export and answers 200.
let exports = 0;
let exportedBytes = 0;
const receiver = createServer((req, res) => {
  req.on('data', (chunk: Buffer) => {
    exportedBytes += chunk.length;
  });
  req.on('end', () => {
    exports++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

const off: NodeJS.ProcessEnv = { OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_TRACES_EXPORTER: '' };
const policyFile = join(mkdtempSync(join(tmpdir(), 'sessionfleet-tracing-bench-')), 'policy.json');
writeFileSync(policyFile, JSON.stringify(POLICY));

interface Agent {
  url: string;
  pid: number | undefined;
}

/** An agent from source; a loaded machine may take a while to start it (tsx compiles first). */
async function start(env: NodeJS.ProcessEnv): Promise<Agent> {
  const args = ['agent/cli.ts', '--policy', policyFile, '--upstream', upstreamUrl, '--listen', '127.0.0.1:0'];
  const spawned: Spawned = spawnNode([...args, '--admin-listen', '127.0.0.1:0'], { env });
  const line = await spawned.waitForLine((l) => l.includes('"agent listening"'), 180_000);
  const { client } = JSON.parse(line) as { client: { port: number } };
  return { url: `http://127.0.0.1:${client.port}`, pid: spawned.child.pid };
}

interface Target {
  name: string;
  agent: Agent;
  headers: (n: number) => Record<string, string>;
  body: string;
  /** The untraced target with the same load, which its ratios are against. */
  baseline: string;
}
const plain = (n: number) => ({ 'content-type': 'application/json', 'x-session': `s-${n % SESSIONS}` });
const modern = (n: number) => ({ ...plain(n), 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call' });

try {
  // One agent per target: each gets the same traffic, so each is as warm (JIT) as the others.
  const traced = { OTEL_EXPORTER_OTLP_ENDPOINT: receiverUrl, OTEL_SERVICE_NAME: 'sessionfleet-bench' };
  const targets: Target[] = [
    { name: 'off', agent: await start(off), headers: plain, body: BODY, baseline: 'off' },
    { name: "off'", agent: await start(off), headers: plain, body: BODY, baseline: 'off' },
    { name: 'on', agent: await start(traced), headers: plain, body: BODY, baseline: 'off' },
    { name: 'off, 2026', agent: await start(off), headers: modern, body: META_BODY, baseline: 'off' },
    { name: 'on, _meta', agent: await start(traced), headers: modern, body: META_BODY, baseline: 'off, 2026' },
  ];

  const load = (target: Target, duration: number) => {
    let next = 0;
    return autocannon({
      url: `${target.agent.url}/mcp`,
      method: 'POST',
      connections: CONNECTIONS,
      duration,
      body: target.body,
      setupClient: (client) => client.setHeaders(target.headers(next++)),
    });
  };
  const measure = async (target: Target) => {
    const pid = target.agent.pid;
    const cpuBefore = cpuTimeMs(pid);
    const result = await load(target, DURATION);
    if (result.non2xx > 0 || result.errors > 0) {
      throw new Error(`${target.name}: ${result.non2xx} non-2xx answers, ${result.errors} errors`);
    }
    return {
      rps: result.requests.average,
      p99: result.latency.p99,
      cpuUs: ((cpuTimeMs(pid) - cpuBefore) * 1000) / result.requests.total,
    };
  };

  // Warm-up, in turns of a second: sessions created, code optimized (a loaded machine's compiler
  // threads take their time), the exporters' first batches sent.
  for (let second = 0; second < WARMUP; second++) for (const target of targets) await load(target, 1);
  const runs = new Map(targets.map((t) => [t.name, [] as Array<Awaited<ReturnType<typeof measure>>>]));
  for (let round = 0; round < ROUNDS; round++) {
    // Each round in another order, so a slow phase of the machine does not always hit the same target.
    const order = round % 2 === 0 ? targets : [...targets].reverse();
    for (const target of order) {
      const run = await measure(target);
      runs.get(target.name)!.push(run);
      console.log(
        `round ${round + 1} ${target.name.padEnd(10)} ${run.rps.toFixed(0).padStart(6)} req/s  p99 ${run.p99} ms  ${run.cpuUs.toFixed(0)} µs/req`,
      );
    }
  }

  // Paired: each target against "off" measured in the same round, seconds apart, so that the
  // shared machine's slow and fast phases cancel out of the ratio; the median over the rounds.
  const summary = targets.map((t) => {
    const r = runs.get(t.name)!;
    const base = runs.get(t.baseline)!;
    const ratio = (key: 'rps' | 'p99' | 'cpuUs') => median(r.map((x, i) => x[key] / base[i]![key]));
    return {
      name: t.name,
      rps: median(r.map((x) => x.rps)),
      p99: median(r.map((x) => x.p99)),
      cpuUs: median(r.map((x) => x.cpuUs)),
      baseline: t.baseline,
      ratios: { rps: ratio('rps'), p99: ratio('p99'), cpuUs: ratio('cpuUs') },
    };
  });
  console.log(
    `tracing cost on the HTTP front: ${ROUNDS} rounds of ${DURATION} s, ${CONNECTIONS} connections; medians, and the median of each round's ratio to the untraced target with the same load`,
  );
  console.log('target        req/s   ratio   p99 ms   ratio   agent CPU µs/req   ratio   against');
  for (const s of summary) {
    const cells = [
      s.name.padEnd(11),
      s.rps.toFixed(0).padStart(7),
      s.ratios.rps.toFixed(2).padStart(5),
      s.p99.toFixed(0).padStart(7),
      s.ratios.p99.toFixed(2).padStart(5),
      s.cpuUs.toFixed(0).padStart(17),
      s.ratios.cpuUs.toFixed(2).padStart(5),
      s.baseline,
    ];
    console.log(cells.join('  '));
  }
  console.log(
    `(the receiver took ${exports} OTLP exports, ${(exportedBytes / 1e6).toFixed(1)} MB, from the traced agents)`,
  );
} finally {
  await stopAll();
  upstream.close();
  receiver.close();
}
