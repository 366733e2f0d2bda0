/**
 * What the memory benches (`streams-memory.ts`, `copilot-sessions-memory.ts`) share: a process's
 * resident memory, the agent's V8 heap from its own `/metrics` after a full collection forced
 * through the inspector (so garbage not yet collected does not count as memory held), the
 * open-file limit, witness latencies and the run's header line.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import WebSocket from 'ws';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

/** The soft limit on open files of this process (its children inherit it). */
export function openFileLimit(): number {
  const match = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return match?.[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(match?.[1] ?? Number.NaN);
}

/** One sample of a metric (first series) from a Prometheus text page. */
export function metric(page: string, name: string): number {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(page);
  return match ? Number(match[1]) : Number.NaN;
}

/** The flag that makes the agent listen for an inspector on a free loopback port. */
export const INSPECT_FLAG = '--inspect=127.0.0.1:0';

/** The inspector's WebSocket URL from the process's stderr ("Debugger listening on ws://…"). */
export function inspectorUrl(stderr: string): string {
  const match = /Debugger listening on (ws:\/\/\S+)/.exec(stderr);
  if (!match?.[1]) throw new Error(`no inspector URL in the agent's output:\n${stderr.slice(0, 500)}`);
  return match[1];
}

/**
 * A connection to a process's inspector: `collectGarbage()` runs a full collection (what a heap
 * snapshot does first, without writing one); `heapSnapshot(file)` writes one.
 */
export interface Inspector {
  collectGarbage(): Promise<void>;
  heapSnapshot(file: string): Promise<void>;
  /** Samples the CPU (every 100 µs) while `during` runs, writes a `.cpuprofile` and its top self-time functions. */
  cpuProfile<T>(file: string, during: () => Promise<T>): Promise<{ result: T; top: SelfTime[] }>;
  close(): void;
}

export async function openInspector(url: string): Promise<Inspector> {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  let nextId = 1;
  const waiting = new Map<number, (result: unknown) => void>();
  let chunks: string[] = [];
  socket.on('message', (data) => {
    const message = JSON.parse(String(data)) as {
      id?: number;
      method?: string;
      params?: { chunk?: string };
      result?: unknown;
    };
    if (message.method === 'HeapProfiler.addHeapSnapshotChunk') chunks.push(message.params?.chunk ?? '');
    if (message.id !== undefined) {
      waiting.get(message.id)?.(message.result);
      waiting.delete(message.id);
    }
  });
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  return {
    collectGarbage: async () => {
      await call('HeapProfiler.collectGarbage');
    },
    async cpuProfile(file, during) {
      await call('Profiler.enable');
      await call('Profiler.setSamplingInterval', { interval: 100 });
      await call('Profiler.start');
      const result = await during();
      const { profile } = (await call('Profiler.stop')) as { profile: CpuProfile };
      await call('Profiler.disable');
      writeFileSync(file, JSON.stringify(profile));
      return { result, top: selfTimes(profile) };
    },
    async heapSnapshot(file) {
      chunks = [];
      await call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
      writeFileSync(file, chunks.join(''));
      chunks = [];
    },
    close: () => socket.close(),
  };
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

/** A function's share of the samples of a CPU profile, by its own code (not its callees). */
export interface SelfTime {
  name: string;
  ms: number;
  share: number;
}

/** Self time per function (name and file:line), most first; `(idle)` included, so shares add to 1. */
export function selfTimes(profile: CpuProfile, top = 12): SelfTime[] {
  const where = new Map<number, string>();
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.replace(/^file:\/\/.*?\/(?=(agent|bench|node_modules)\/)/, '');
    where.set(node.id, `${functionName || '(anonymous)'}${url ? ` ${file}:${lineNumber + 1}` : ''}`);
  }
  const totals = new Map<string, number>();
  let all = 0;
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    all += ms;
    const name = where.get(id) ?? '?';
    totals.set(name, (totals.get(name) ?? 0) + ms);
  });
  return [...totals]
    .map(([name, ms]) => ({ name, ms, share: all > 0 ? ms / all : 0 }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, top);
}

export interface Memory {
  /** Resident set, MiB. */
  rss: number;
  /** V8 heap in use after a full collection, MiB. */
  heap: number;
}

/**
 * The agent's memory: a full collection through its inspector, then RSS from /proc and heap in
 * use from its `/metrics` (prom-client's `nodejs_heap_size_used_bytes`, read at scrape time).
 */
export async function agentMemory(
  pid: number,
  adminUrl: string,
  inspector: { collectGarbage(): Promise<void> },
): Promise<Memory> {
  await inspector.collectGarbage();
  await inspector.collectGarbage();
  const page = await (await fetch(`${adminUrl}/metrics`)).text();
  return { rss: rssMiB(pid), heap: metric(page, 'sessionfleet_agent_nodejs_heap_size_used_bytes') / 1024 / 1024 };
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

export interface Witnessed {
  p50: number;
  p99: number;
  /** Answers that were not the expected one, by what they were. */
  failures: Record<string, number>;
}

/** `count` witness calls one after the other; `call` resolves with 'ok' or what went wrong. */
export async function witness(count: number, call: () => Promise<string>): Promise<Witnessed> {
  const times: number[] = [];
  const failures: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    let outcome: string;
    try {
      outcome = await call();
    } catch (error) {
      outcome = `error: ${error instanceof Error ? error.message.slice(0, 60) : String(error)}`;
    }
    times.push(performance.now() - started);
    if (outcome !== 'ok') failures[outcome] = (failures[outcome] ?? 0) + 1;
  }
  return { p50: quantile(times, 0.5), p99: quantile(times, 0.99), failures };
}

/** Runs `task(i)` for i in [0, count), at most `parallel` at once. */
export async function inBatches(count: number, parallel: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, count) }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

export const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

export function header(name: string): string {
  return `${name}: node ${process.version}, ${cpus()[0]?.model ?? 'cpu'} x${availableParallelism()}, load ${load()}, open-file limit ${openFileLimit()}`;
}

export const f = (n: number, digits = 1) => n.toFixed(digits);

/** `phase − base` per item, KiB, from MiB figures. */
export const perItemKiB = (phase: number, base: number, items: number) => ((phase - base) * 1024) / items;
