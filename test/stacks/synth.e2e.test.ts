import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, run } from '../helpers/run.js';

interface Manifest {
  stacks: Record<string, { synthesizedStackPath: string }>;
}

function readStacks(outDir: string): Record<string, string> {
  const manifest = JSON.parse(readFileSync(join(outDir, 'manifest.json'), 'utf8')) as Manifest;
  return Object.fromEntries(
    Object.entries(manifest.stacks).map(([name, s]) => [
      name,
      readFileSync(join(outDir, s.synthesizedStackPath), 'utf8'),
    ]),
  );
}

describe('the example stacks', () => {
  let viaCli: Record<string, string>;
  let viaApp: Record<string, string>;
  let cliOutput: string;

  beforeAll(async () => {
    const a = mkdtempSync(join(tmpdir(), 'sessionfleet-synth-a-'));
    const b = mkdtempSync(join(tmpdir(), 'sessionfleet-synth-b-'));
    // The main job's own path: the cdktf CLI, then the summary.
    const cli = await run('npx', ['cdktf', 'synth', '--output', a], { env: { CHECKPOINT_DISABLE: '1', CI: '1' } });
    expect(cli.code, cli.stderr).toBe(0);
    const summary = await run('npx', ['tsx', 'stacks/summary.ts', a]);
    expect(summary.code, summary.stderr).toBe(0);
    cliOutput = summary.stdout;
    // A second, independent synthesis straight from the app.
    const app = await run('npx', ['tsx', 'stacks/main.ts'], { env: { CDKTF_OUTDIR: b } });
    expect(app.code, app.stderr).toBe(0);
    viaCli = readStacks(a);
    viaApp = readStacks(b);
  }, 180_000);

  it('synthesizes a Kubernetes and an Azure stack', () => {
    expect(Object.keys(viaCli)).toEqual(expect.arrayContaining(['kubernetes', 'azure']));
    expect(cliOutput).toMatch(/^\d+ stacks, \d+ resources in /m);
  });

  it('is deterministic: two syntheses are byte for byte identical', () => {
    expect(viaApp).toEqual(viaCli);
  });

  it('holds no machine paths and no timestamps', () => {
    for (const [name, json] of Object.entries(viaCli)) {
      expect(json, name).not.toContain(REPO_ROOT);
      // Paths inside containers are part of a pod spec, not of this machine: the agent's scratch
      // emptyDir at "/tmp" and the Copilot CLI's "/root/.copilot/session-state" are allowed.
      expect(json, name).not.toContain(`${tmpdir()}/`);
      expect(json, name).not.toContain(process.cwd());
      expect(json, name).not.toMatch(/"(\/(home|work|tmp|Users)\/)/);
      expect(json, name).not.toMatch(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/);
    }
  });

  it('configures an explicit local backend with a relative path', () => {
    for (const [name, json] of Object.entries(viaCli)) {
      const parsed = JSON.parse(json);
      expect(parsed.terraform.backend.local.path, name).toBe(`terraform.${name}.tfstate`);
    }
  });
});
