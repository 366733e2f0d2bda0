import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, run } from '../helpers/run.js';

const genDocs = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'scripts/gen-docs.ts', ...args]);

describe('npm run docs:check', () => {
  it('passes on the committed reference pages and names each stale or missing one', { timeout: 300_000 }, async () => {
    const current = await genDocs(['--check']);
    expect(current.stderr).toBe('');
    expect(current.stdout).toMatch(/^gen-docs: \d+ generated files are current\n$/);
    expect(current.code).toBe(0);

    const out = mkdtempSync(join(tmpdir(), 'sessionfleet-docs-'));
    try {
      cpSync(join(REPO_ROOT, 'docs', 'reference'), join(out, 'docs', 'reference'), { recursive: true });
      cpSync(join(REPO_ROOT, 'policy', 'policy-input.ts'), join(out, 'policy', 'policy-input.ts'));
      writeFileSync(join(out, 'docs', 'reference', 'errors.md'), '# hand-edited\n');
      rmSync(join(out, 'docs', 'reference', 'metrics.md'));
      const stale = await genDocs(['--check', '--out', out]);
      expect(stale.code).toBe(1);
      expect(stale.stdout).toBe('');
      expect(stale.stderr).toBe(
        'gen-docs: docs/reference/errors.md is stale or missing\n' +
          'gen-docs: docs/reference/metrics.md is stale or missing\n' +
          'gen-docs: run `npm run docs` and commit the result\n',
      );
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
