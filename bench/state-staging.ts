/**
 * What staging a Copilot session's state costs (ADR 0019): a write-back (under the in-process
 * session lock, copy beside the target, fence file, two renames) and a stage-in (replace, copy,
 * make group-writable), next to a baseline of a plain recursive copy of the same directory
 * (`fs.cp`) on the same disk, printed as ratios. Session directories shaped like the CLI's: an
 * event log of the given size, a workspace file, client metadata, a checkpoint index.
 *
 *   npx tsx bench/state-staging.ts [iterations per measurement, default 50]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateStaging } from '../agent/core/state-staging.js';
import { MemoryLock } from '../agent/fleet/lock.js';

const iterations = Number(process.argv[2] ?? 50);
const root = mkdtempSync(join(tmpdir(), 'sessionfleet-bench-staging-'));
const shared = join(root, 'shared');
const app = join(root, 'app');
const scratch = join(root, 'scratch');
for (const dir of [shared, app, scratch]) mkdirSync(dir);
const staging = new StateStaging({ sharedDir: shared, appDir: app, lock: new MemoryLock(), fleetWideTokens: false });

function session(dir: string, id: string, eventBytes: number): void {
  mkdirSync(join(dir, id, 'checkpoints'), { recursive: true });
  const line = `${JSON.stringify({ type: 'assistant.message', data: { content: 'x'.repeat(200) } })}\n`;
  writeFileSync(join(dir, id, 'events.jsonl'), line.repeat(Math.ceil(eventBytes / line.length)));
  writeFileSync(join(dir, id, 'workspace.yaml'), `id: ${id}\ncwd: /root\nname: a prompt\n`);
  writeFileSync(join(dir, id, 'client-metadata.json'), '{"version":1,"metadata":{"sessionfleet/owner":"alice"}}');
  writeFileSync(join(dir, id, 'checkpoints', 'index.md'), '# Checkpoint History\n');
}

/**
 * Milliseconds per call of each of `works`, median of `iterations`, measured round-robin (one of
 * each per round) so that the load of a shared machine weighs on all of them alike.
 */
async function medians(works: Array<() => Promise<unknown>>): Promise<number[]> {
  for (let i = 0; i < 5; i++) for (const work of works) await work();
  const times = works.map(() => [] as number[]);
  for (let i = 0; i < iterations; i++) {
    for (const [k, work] of works.entries()) {
      const started = performance.now();
      await work();
      times[k]!.push(performance.now() - started);
    }
  }
  return times.map((t) => t.sort((a, b) => a - b)[Math.floor(t.length / 2)]!);
}

const rows: string[] = [];
for (const [label, bytes] of [
  ['26 KB (one short turn)', 26 * 1024],
  ['1 MB', 1024 * 1024],
  ['10 MB', 10 * 1024 * 1024],
] as const) {
  const id = `s-${bytes}`;
  session(app, id, bytes);
  session(shared, id, bytes);
  const [baseline, writeBack, stageIn] = (await medians([
    async () => {
      await rm(join(scratch, id), { recursive: true, force: true });
      await cp(join(app, id), join(scratch, id), { recursive: true });
    },
    () => staging.writeBack(id),
    () => staging.stageIn(id),
  ])) as [number, number, number];
  rows.push(
    `| ${label} | ${baseline.toFixed(2)} ms | ${writeBack.toFixed(2)} ms (${(writeBack / baseline).toFixed(1)}×) | ${stageIn.toFixed(2)} ms (${(stageIn / baseline).toFixed(1)}×) |`,
  );
}
rmSync(root, { recursive: true, force: true });

console.log(
  `state staging, ${cpus().length} CPUs, Node ${process.version}, median of ${iterations} rounds, tmpdir disk`,
);
console.log('| event log | plain recursive copy (baseline) | write-back | stage-in |');
console.log('| --- | --- | --- | --- |');
for (const row of rows) console.log(row);
