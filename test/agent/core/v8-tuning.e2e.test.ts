import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { tuneV8 } from '../../../agent/core/v8-tuning.js';

describe('tuneV8', () => {
  it('switches allocation-site pretenuring off when the operator did not choose', () => {
    const applied: string[] = [];
    expect(tuneV8(['--max-semi-space-size=32'], (flag) => applied.push(flag))).toEqual([
      '--no-allocation-site-pretenuring',
    ]);
    expect(applied).toEqual(['--no-allocation-site-pretenuring']);
  });

  it.each(['--allocation-site-pretenuring', '--no-allocation-site-pretenuring', '--allocation_site_pretenuring'])(
    'leaves V8 alone when node was started with %s',
    (given) => {
      const applied: string[] = [];
      expect(tuneV8(['--trace-gc', given], (flag) => applied.push(flag))).toEqual([]);
      expect(applied).toEqual([]);
    },
  );

  it('names a flag the running V8 has', () => {
    // setFlagsFromString ignores a flag V8 does not know without a word, so a rename in a later
    // Node.js would silently undo the tuning: check the name against this binary's own list.
    const options = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
    for (const flag of tuneV8([], () => {})) {
      expect(options).toContain(`  ${flag.replace(/^--no-/, '--')} (`);
    }
  });
});
