/**
 * Many open SSE streams on one agent (issue 18 §3): the agent's memory per stream and a witness
 * request's latency, as ratios to the idle baseline of the same run.
 *
 * One agent process (`mcp-streamable-http` affinity, `limits.streamsPerInstance` raised to
 * BENCH_STREAMS + 100, `--http-max-connections` to twice that) in front of `stream-upstream.ts`
 * (its own process: the SDK v2 for MCP 2026 listen streams, 2025 sessionful Streamable HTTP in the
 * SDK's wire format with several GET streams per session). Phases, one after the other:
 *
 *   idle                 one 2025 session (the witness's), nothing open
 *   2025 GET streams     BENCH_SESSIONS (200, the `sessionsPerInstance` ceiling) sessions
 *                        initialized through the agent, BENCH_STREAMS (5,000) GET streams spread
 *                        over them (25 each)
 *   2026 listen streams  the GET streams closed and the sessions deleted, then BENCH_STREAMS
 *                        `subscriptions/listen` streams
 *   after close          all closed
 *
 * Per phase: RSS (/proc) and V8 heap in use (the agent's `/metrics`), both after a full collection
 * forced through the agent's inspector (`--inspect` on a free loopback port), memory per stream
 * ((phase − idle) / N, KiB), the witness's p50/p99 (BENCH_WITNESSES sequential 2025 `ping`s on
 * its own session, over a connection of its own) as ratios to idle, the same witness sent
 * straight to the upstream (same session id, which the agent passes through; its own connection),
 * so that a slowdown of the upstream shows apart from the agent's, and how many streams a
 * notification the upstream sent on every stream reached. Nothing here asserts.
 *
 * Knobs: BENCH_STREAMS (5000), BENCH_SESSIONS (200), BENCH_WITNESSES (300), BENCH_OPEN_PARALLEL
 * (100 streams being opened at once), BENCH_SETTLE_MS (3000 before each measurement),
 * BENCH_HEAP_SNAPSHOTS (a directory: the agent's heap at every phase, compare two with
 * `npx tsx bench/heap-diff.ts`; snapshots inflate the RSS figures), BENCH_CPU_PROFILES (a
 * directory: after each measured phase one more through-agent witness round runs with both the
 * agent and the upstream sampled through their inspectors; writes `.cpuprofile` files, open them
 * in Chrome DevTools, and prints the top self-time functions; the measured figures are taken
 * unprofiled). A small run:
 * `BENCH_STREAMS=500 BENCH_SESSIONS=20 npx tsx bench/streams-memory.ts`. The full run takes about
 * 2.5 minutes (8 on a machine with load 25). Each stream needs a descriptor in this process and
 * two in the agent: the open-file limit is printed and checked first.
 */
import { join } from 'node:path';
import { Agent, Pool, request } from 'undici';
import { type AgentProcess, spawnAgent, spawnNode, stopAll } from '../test/helpers/http-agent-process.js';
import {
  agentMemory,
  f,
  header,
  INSPECT_FLAG,
  inBatches,
  inspectorUrl,
  load,
  type Memory,
  metric,
  openFileLimit,
  openInspector,
  perItemKiB,
  type SelfTime,
  sleep,
  type Witnessed,
  witness,
} from './mem-common.js';

const STREAMS = Number(process.env.BENCH_STREAMS ?? 5000);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 200);
const WITNESSES = Number(process.env.BENCH_WITNESSES ?? 300);
const OPEN_PARALLEL = Number(process.env.BENCH_OPEN_PARALLEL ?? 100);
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 3000);
/** A directory: a heap snapshot of the agent at every phase, for `bench/heap-diff.ts`. */
const SNAPSHOTS = process.env.BENCH_HEAP_SNAPSHOTS;
/** A directory: CPU profiles of the agent and the upstream during an extra witness round per phase. */
const PROFILES = process.env.BENCH_CPU_PROFILES;
const LEGACY = '2025-06-18';
const MODERN = '2026-07-28';

/** Long-lived streams: as many connections as asked, no body timeout. */
const streamsDispatcher = new Agent({ connections: null, bodyTimeout: 0, headersTimeout: 60_000 });

interface OpenStream {
  close(): void;
  /** Resolves true once `marker` arrived on the stream. */
  saw(marker: string): boolean;
}

/** Opens a stream through the agent and keeps reading it; resolves once `ready` says so. */
async function openStream(
  url: string,
  options: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
  ready: (text: string) => boolean,
): Promise<OpenStream> {
  const response = await request(url, { ...options, dispatcher: streamsDispatcher });
  if (response.statusCode !== 200 || !String(response.headers['content-type']).startsWith('text/event-stream')) {
    const text = await response.body.text();
    throw new Error(`stream refused: ${response.statusCode} ${text.slice(0, 200)}`);
  }
  let text = '';
  response.body.setEncoding('utf8');
  response.body.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the stream did not get ready in 30 s; it sent: ${JSON.stringify(text.slice(0, 300))}`)),
      30_000,
    );
    const check = () => {
      if (!ready(text)) return;
      clearTimeout(timer);
      resolve();
    };
    response.body.on('data', (chunk: string) => {
      // Keep only the tail: a stream carries a few events here, and the reader must stay small.
      text = (text + chunk).slice(-4096);
      check();
    });
    check();
  });
  return {
    close: () => response.body.destroy(),
    saw: (marker) => text.includes(marker),
  };
}

interface Phase {
  name: string;
  memory: Memory;
  witness: Witnessed;
  /** The same witness straight to the upstream. */
  direct: Witnessed;
  streams: number;
  /** Streams a notification reached, of `streams`. */
  notified?: number;
  openStreamsMetric: number;
}

async function main(): Promise<void> {
  console.log(header('streams-memory'));
  const needed = STREAMS * 2 + 500;
  if (openFileLimit() < needed) {
    console.log(`  the open-file limit (${openFileLimit()}) is below the ${needed} the agent needs: raise ulimit -n`);
  }
  // Started by hand rather than with spawnListening: on a loaded machine its 20 s can be short.
  const upstreamProcess = spawnNode(['bench/stream-upstream.ts'], { nodeArgs: [INSPECT_FLAG] });
  const listening = await upstreamProcess.waitForLine((l) => l.includes('"listening"'), 90_000);
  const upstream = {
    url: `http://127.0.0.1:${(JSON.parse(listening) as { listening: { port: number } }).listening.port}`,
  };
  const agent: AgentProcess = await spawnAgent({
    policy: {
      affinity: { type: 'mcp-streamable-http' },
      sessionsPerInstance: SESSIONS,
      concurrencyPerInstance: 200,
      limits: { streamsPerInstance: STREAMS + 100 },
    },
    upstream: upstream.url,
    args: ['--http-max-connections', String(STREAMS * 2 + 100)],
    nodeArgs: [INSPECT_FLAG],
  });
  const inspector = await openInspector(inspectorUrl(agent.stderr()));
  const upstreamInspector = await openInspector(inspectorUrl(upstreamProcess.stderr()));
  const pid = agent.child.pid!;
  const mcp = `${agent.url}/mcp`;
  const witnessPool = new Pool(agent.url, { connections: 1 });
  const directPool = new Pool(upstream.url, { connections: 1 });
  const post = async (
    sessionId: string | undefined,
    body: unknown,
    dispatcher: Agent | Pool = streamsDispatcher,
    url = mcp,
  ) => {
    const response = await request(url, {
      method: 'POST',
      dispatcher,
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...(sessionId ? { 'mcp-session-id': sessionId, 'mcp-protocol-version': LEGACY } : {}),
      },
      body: JSON.stringify(body),
    });
    const text = await response.body.text();
    return { status: response.statusCode, sessionId: response.headers['mcp-session-id'] as string | undefined, text };
  };
  const initialize = async () => {
    const init = await post(undefined, {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: LEGACY, capabilities: {}, clientInfo: { name: 'membench', version: '1.0.0' } },
    });
    if (init.status !== 200 || !init.sessionId) throw new Error(`initialize: ${init.status} ${init.text}`);
    await post(init.sessionId, { jsonrpc: '2.0', method: 'notifications/initialized' });
    return init.sessionId;
  };
  const metricsPage = async () => (await fetch(`${agent.adminUrl}/metrics`)).text();
  const openStreamsMetric = async () => metric(await metricsPage(), 'sessionfleet_open_streams');
  const notify = async () => (await fetch(`${upstream.url}/_notify`, { method: 'POST' })).json();

  const witnessSession = await initialize();
  let witnessId = 100;
  const ping = async () => {
    const answer = await post(witnessSession, { jsonrpc: '2.0', id: witnessId++, method: 'ping' }, witnessPool);
    return answer.status === 200 && answer.text.includes('"result"') ? 'ok' : `${answer.status}`;
  };
  /** The same ping, same session, straight to the upstream: what the upstream alone costs. */
  const directPing = async () => {
    const answer = await post(
      witnessSession,
      { jsonrpc: '2.0', id: witnessId++, method: 'ping' },
      directPool,
      `${upstream.url}/mcp`,
    );
    return answer.status === 200 && answer.text.includes('"result"') ? 'ok' : `${answer.status}`;
  };
  const phases: Phase[] = [];
  const measure = async (name: string, streams: number, notified?: number) => {
    await sleep(SETTLE_MS);
    const memory = await agentMemory(pid, agent.adminUrl, inspector);
    if (SNAPSHOTS)
      await inspector.heapSnapshot(
        join(SNAPSHOTS, `streams-${phases.length}-${name.replaceAll(' ', '-')}.heapsnapshot`),
      );
    const phase: Phase = {
      name,
      memory,
      witness: await witness(WITNESSES, ping),
      direct: await witness(WITNESSES, directPing),
      streams,
      openStreamsMetric: await openStreamsMetric(),
      ...(notified === undefined ? {} : { notified }),
    };
    phases.push(phase);
    if (PROFILES) await profile(name);
    return phase;
  };
  /** One more through-agent witness round with both processes sampled; prints where their CPU went. */
  const profile = async (name: string) => {
    const file = (who: string) =>
      join(PROFILES!, `streams-${phases.length - 1}-${name.replaceAll(' ', '-')}-${who}.cpuprofile`);
    const { result, top: agentTop } = await inspector.cpuProfile(file('agent'), async () =>
      upstreamInspector.cpuProfile(file('upstream'), () => witness(WITNESSES, ping)),
    );
    const shares = (top: SelfTime[]) =>
      top
        .slice(0, 8)
        .map((t) => `${t.name} ${f(t.share * 100)}%`)
        .join('; ');
    console.log(`  cpu profile, ${name}, ${WITNESSES} witnesses (p50 ${f(result.result.p50, 2)} ms while sampled):`);
    console.log(`    agent:    ${shares(agentTop)}`);
    console.log(`    upstream: ${shares(result.top)}`);
  };
  /** Sends one notification on every stream and counts the streams it reached within 10 s. */
  const notifiedCount = async (streams: OpenStream[], marker: string) => {
    const sent = (await notify()) as { get: number; listen: number };
    const deadline = Date.now() + 10_000;
    let reached = 0;
    while (Date.now() < deadline) {
      reached = streams.filter((s) => s.saw(marker)).length;
      if (reached === streams.length) break;
      await sleep(100);
    }
    console.log(`  upstream wrote the notification to ${JSON.stringify(sent)} streams; ${reached} arrived`);
    return reached;
  };
  const closeAll = async (streams: OpenStream[]) => {
    for (const s of streams) s.close();
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (await openStreamsMetric()) > 0) await sleep(200);
  };

  try {
    await witness(500, ping); // warm-up: the JIT, the connection
    const directWarm = await witness(500, directPing);
    if (Object.keys(directWarm.failures).length > 0)
      throw new Error(`the direct witness failed: ${JSON.stringify(directWarm.failures)}`);
    const idle = await measure('idle', 0);

    // 2025: sessions through the agent, then GET streams spread over them.
    let started = performance.now();
    const sessions = [witnessSession];
    await inBatches(SESSIONS - 1, 20, async () => {
      sessions.push(await initialize());
    });
    const gets: OpenStream[] = [];
    await inBatches(STREAMS, OPEN_PARALLEL, async (i) => {
      const sessionId = sessions[i % sessions.length]!;
      gets.push(
        await openStream(
          mcp,
          {
            method: 'GET',
            headers: { accept: 'text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': LEGACY },
          },
          () => true,
        ),
      );
    });
    console.log(
      `  ${gets.length} 2025 GET streams on ${sessions.length} sessions open in ${f((performance.now() - started) / 1000)} s`,
    );
    const notifiedGet = await notifiedCount(gets, 'bench notification');
    await measure('2025 GET streams', gets.length, notifiedGet);
    await closeAll(gets);
    for (const sessionId of sessions.slice(1)) {
      await request(mcp, {
        method: 'DELETE',
        headers: { 'mcp-session-id': sessionId, 'mcp-protocol-version': LEGACY },
      }).then((r) => r.body.dump());
    }
    await measure('2025 closed', 0);

    // 2026: listen streams, no session.
    started = performance.now();
    const listens: OpenStream[] = [];
    await inBatches(STREAMS, OPEN_PARALLEL, async (i) => {
      const body = {
        jsonrpc: '2.0',
        id: i + 1,
        method: 'subscriptions/listen',
        params: {
          notifications: { toolsListChanged: true },
          _meta: {
            'io.modelcontextprotocol/protocolVersion': MODERN,
            'io.modelcontextprotocol/clientInfo': { name: 'membench', version: '1.0.0' },
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      };
      listens.push(
        await openStream(
          mcp,
          {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              accept: 'application/json, text/event-stream',
              'mcp-protocol-version': MODERN,
              'mcp-method': 'subscriptions/listen',
            },
            body: JSON.stringify(body),
          },
          // The SDK acknowledges a listen on its stream once the subscription is live.
          (text) => text.includes('notifications/subscriptions/acknowledged'),
        ),
      );
    });
    console.log(`  ${listens.length} 2026 listen streams open in ${f((performance.now() - started) / 1000)} s`);
    const notifiedListen = await notifiedCount(listens, 'notifications/tools/list_changed');
    await measure('2026 listen streams', listens.length, notifiedListen);
    await closeAll(listens);
    await sleep(SETTLE_MS);
    await measure('after close', 0);

    report(idle, phases);
  } finally {
    inspector.close();
    upstreamInspector.close();
    await witnessPool.close();
    await directPool.close();
    await streamsDispatcher.destroy();
    await agent.stop('SIGKILL').catch(() => {});
    await stopAll();
  }
}

function report(idle: Phase, phases: Phase[]): void {
  console.log(
    '\n| phase | streams | open_streams metric | RSS MiB | heap MiB | RSS/stream KiB | heap/stream KiB | witness p50 ms (×idle) | witness p99 ms (×idle) | direct p50 ms (×idle) | direct p99 ms (×idle) | notified |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const p of phases) {
    const per = (now: number, base: number) => (p.streams > 0 ? f(perItemKiB(now, base, p.streams)) : '—');
    const failures = Object.keys(p.witness.failures).length > 0 ? ` ${JSON.stringify(p.witness.failures)}` : '';
    const directFailures = Object.keys(p.direct.failures).length > 0 ? ` ${JSON.stringify(p.direct.failures)}` : '';
    console.log(
      `| ${p.name} | ${p.streams} | ${p.openStreamsMetric} | ${f(p.memory.rss)} | ${f(p.memory.heap)} | ${per(p.memory.rss, idle.memory.rss)} | ${per(p.memory.heap, idle.memory.heap)} | ${f(p.witness.p50, 2)} (×${f(p.witness.p50 / idle.witness.p50, 2)}) | ${f(p.witness.p99, 2)} (×${f(p.witness.p99 / idle.witness.p99, 2)})${failures} | ${f(p.direct.p50, 2)} (×${f(p.direct.p50 / idle.direct.p50, 2)}) | ${f(p.direct.p99, 2)} (×${f(p.direct.p99 / idle.direct.p99, 2)})${directFailures} | ${p.notified ?? '—'} |`,
    );
  }
  const byName = (name: string) => phases.find((p) => p.name === name)!;
  const get = byName('2025 GET streams');
  const listen = byName('2026 listen streams');
  const after = byName('after close');
  const line = (p: Phase) =>
    `${p.streams} ${p.name} +${f(perItemKiB(p.memory.rss, idle.memory.rss, p.streams))} KiB RSS/+${f(perItemKiB(p.memory.heap, idle.memory.heap, p.streams))} KiB heap per stream, witness p50 ×${f(p.witness.p50 / idle.witness.p50, 2)} p99 ×${f(p.witness.p99 / idle.witness.p99, 2)} (direct to the upstream p50 ×${f(p.direct.p50 / idle.direct.p50, 2)} p99 ×${f(p.direct.p99 / idle.direct.p99, 2)}), notified ${p.notified}/${p.streams}`;
  console.log(`\n(load average at the end ${load()})`);
  console.log(
    `streams-memory summary: ${line(get)}; ${line(listen)}; after close RSS ×${f(after.memory.rss / idle.memory.rss, 2)} heap ×${f(after.memory.heap / idle.memory.heap, 2)} of idle`,
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
