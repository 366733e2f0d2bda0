/**
 * The cost of the fleet's extra hop on the HTTP front: a small JSON POST on an established
 * session (header affinity), sent to the agent that owns the session, and the same requests sent
 * to another agent of the fleet, which proxies them to the owner agent with its forwarding mark.
 *
 *   npx tsx bench/fleet-http-hop.ts     # about 60 s; BENCH_DURATION (s, default 10) per scenario
 *
 * A private redis-server, two plain HTTP services (the front's upstream fixture, `/echo`) and two
 * agent processes with `--redis` (from source, default log level), loopback only. Each scenario is
 * autocannon for BENCH_DURATION seconds with 1 and with 16 connections, all on the one session;
 * the agents and the services share the machine with the load generator, so the ratio, not the
 * absolute figures, is what to compare. Prints a Markdown table.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { spawnAgent, spawnListening, stopAll } from '../test/helpers/http-agent-process.js';
import { freePort, startRedisServer } from '../test/helpers/redis-server.js';

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const SESSION = `bench-hop-${Date.now()}`;
const BODY = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } });
const HEADERS = { 'content-type': 'application/json', 'x-session': SESSION };

/** user + system CPU time of a process in ms (Linux `/proc`, 100 ticks/s), or NaN. */
function cpuTimeMs(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  total: number;
}

async function load(url: string, connections: number, duration = DURATION): Promise<Figures> {
  const result = await autocannon({
    url: `${url}/echo`,
    method: 'POST',
    connections,
    duration,
    body: BODY,
    headers: HEADERS,
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    total: result.requests.total,
    errors: result.errors + result.timeouts + result.non2xx,
  };
}

async function main(): Promise<void> {
  const redis = await startRedisServer();
  try {
    const agents = [];
    for (const id of ['a', 'b']) {
      const service = await spawnListening('test/agent/http/fixtures/upstream.ts');
      const port = await freePort();
      agents.push(
        await spawnAgent({
          policy: {
            affinity: { type: 'header', headerName: 'x-session' },
            sessionsPerInstance: 20,
            concurrencyPerInstance: 200,
          },
          upstream: service.url,
          args: [
            ['--listen', `127.0.0.1:${port}`],
            ['--advertise', `http://127.0.0.1:${port}`],
            ['--instance-id', id],
            ['--redis', redis.url],
          ].flat(),
        }),
      );
    }
    const [owner, other] = agents as [(typeof agents)[0], (typeof agents)[0]];
    // Both registered, then the session is created at a: a holds it.
    await new Promise((r) => setTimeout(r, 1000));
    const first = await fetch(`${owner.url}/echo`, { method: 'POST', headers: HEADERS, body: BODY });
    if (first.status !== 200) throw new Error(`creating the session: ${first.status} ${await first.text()}`);
    await first.arrayBuffer();
    // The non-owner's first request looks the owner up in Redis; later ones use its cache.
    const warm = await fetch(`${other.url}/echo`, { method: 'POST', headers: HEADERS, body: BODY });
    if (warm.status !== 200) throw new Error(`through the non-owner: ${warm.status} ${await warm.text()}`);
    await warm.arrayBuffer();

    // Redis commands the fleet issues during a run (heartbeats included), per request.
    const inspector = new Redis(redis.url, { lazyConnect: true });
    await inspector.connect();
    const commands = async () =>
      Number(/total_commands_processed:(\d+)/.exec(await inspector.info('stats'))?.[1] ?? Number.NaN);
    const pids = [owner.child.pid, other.child.pid];
    const measure = async (url: string, connections: number) => {
      const before = await commands();
      const cpuBefore = pids.map(cpuTimeMs);
      const figures = await load(url, connections);
      const cpu = pids.map((pid, i) => ((cpuTimeMs(pid) - cpuBefore[i]!) * 1000) / figures.total);
      const perRequest = (await commands()) - before - 1;
      return { ...figures, cpu, redisPerRequest: perRequest / figures.total };
    };
    // Closed loop: each connection has one request out at a time, so the mean round trip is connections / rate.
    const ms = (f: Figures, connections: number) =>
      `${((1000 * connections) / f.rps).toFixed(2)} / ${f.p50} / ${f.p99}`;
    const µs = (cpu: number[]) => cpu.map((c) => (Number.isNaN(c) ? '-' : c.toFixed(0))).join(' + ');

    const rows: string[] = [];
    for (const connections of [1, 16]) {
      // A short warm-up of each path, then the measured runs.
      await load(owner.url, connections, 2);
      await load(other.url, connections, 2);
      const direct = await measure(owner.url, connections);
      const hop = await measure(other.url, connections);
      if (direct.errors + hop.errors > 0) throw new Error(`errors: owner ${direct.errors}, non-owner ${hop.errors}`);
      rows.push(
        `| ${connections} connection${connections === 1 ? '' : 's'} | ${Math.round(direct.rps)} | ${ms(direct, connections)} | ${Math.round(hop.rps)} | ${ms(hop, connections)} | ${(hop.rps / direct.rps).toFixed(2)} | ${µs(direct.cpu)} / ${µs(hop.cpu)} | ${direct.redisPerRequest.toFixed(4)} / ${hop.redisPerRequest.toFixed(4)} |`,
      );
      console.error(`done: ${connections} connection(s)`);
    }
    inspector.disconnect();
    console.log(
      `node ${process.version}, ${availableParallelism()} CPUs (${cpus()[0]?.model ?? '?'}), ${DURATION} s per run, POST ${Buffer.byteLength(BODY)} B JSON on one header-affinity session\n`,
    );
    console.log(
      '| HTTP POST on one session | through the owner (req/s) | owner mean / p50 / p99 (ms) | through a non-owner (req/s) | non-owner mean / p50 / p99 (ms) | non-owner / owner | agent CPU µs/req, owner + other (owner / non-owner path) | Redis commands per request (owner / non-owner) |',
    );
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const row of rows) console.log(row);
  } finally {
    await stopAll();
    await redis.stop();
  }
}

await main();
