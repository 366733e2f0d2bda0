/**
 * What grew between two V8 heap snapshots (`.heapsnapshot`, as the memory benches write them with
 * BENCH_HEAP_SNAPSHOTS=<dir>): objects and self size per constructor, the largest growths first.
 * `npx tsx bench/heap-diff.ts <before.heapsnapshot> <after.heapsnapshot> [rows]`.
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** constructor (or type) name → [count, self bytes] */
function summarize(file: string): Map<string, [number, number]> {
  const data = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = data.snapshot.meta.node_fields;
  const types = data.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const out = new Map<string, [number, number]>();
  for (let i = 0; i < data.nodes.length; i += width) {
    const type = types[data.nodes[i + typeAt]!] ?? '?';
    const name = type === 'object' || type === 'native' ? data.strings[data.nodes[i + nameAt]!]! : `(${type})`;
    const row = out.get(name) ?? [0, 0];
    row[0]++;
    row[1] += data.nodes[i + sizeAt]!;
    out.set(name, row);
  }
  return out;
}

const [beforeFile, afterFile, rowsArg] = process.argv.slice(2);
if (!beforeFile || !afterFile) {
  console.error('usage: heap-diff.ts <before.heapsnapshot> <after.heapsnapshot> [rows]');
  process.exit(2);
}
const before = summarize(beforeFile);
const after = summarize(afterFile);
const rows = [...new Set([...before.keys(), ...after.keys()])]
  .map((name) => {
    const [c0, s0] = before.get(name) ?? [0, 0];
    const [c1, s1] = after.get(name) ?? [0, 0];
    return { name, count: c1 - c0, bytes: s1 - s0 };
  })
  .sort((a, b) => b.bytes - a.bytes)
  .slice(0, Number(rowsArg ?? 25));
const total = (m: Map<string, [number, number]>) => [...m.values()].reduce((sum, [, s]) => sum + s, 0);
console.log(`self size: ${(total(before) / 1024 / 1024).toFixed(1)} → ${(total(after) / 1024 / 1024).toFixed(1)} MiB`);
console.log('| constructor | Δ objects | Δ self KiB |');
console.log('| --- | ---: | ---: |');
for (const r of rows) console.log(`| ${r.name.slice(0, 60)} | ${r.count} | ${(r.bytes / 1024).toFixed(1)} |`);
