/** Prints what `cdktf synth` wrote: one line per stack with its resources by type. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { countByType, formatTypeCounts } from '../constructs/fleet-summary.js';

interface Manifest {
  stacks: Record<string, { synthesizedStackPath: string; workingDirectory: string }>;
}

const outDir = process.argv[2] ?? 'cdktf.out';
const manifest = JSON.parse(readFileSync(join(outDir, 'manifest.json'), 'utf8')) as Manifest;
let total = 0;
for (const [name, stack] of Object.entries(manifest.stacks)) {
  const json = JSON.parse(readFileSync(join(outDir, stack.synthesizedStackPath), 'utf8')) as {
    resource?: Record<string, Record<string, unknown>>;
    output?: Record<string, unknown>;
  };
  const byType = countByType(
    Object.entries(json.resource ?? {}).flatMap(([type, items]) => Object.keys(items).map(() => type)),
  );
  const count = byType.reduce((sum, [, n]) => sum + n, 0);
  total += count;
  console.log(
    `${name}: ${count} resources, ${Object.keys(json.output ?? {}).length} outputs -> ${join(outDir, stack.synthesizedStackPath)}`,
  );
  for (const line of formatTypeCounts(byType)) console.log(line);
}
console.log(`${Object.keys(manifest.stacks).length} stacks, ${total} resources in ${outDir}/`);
