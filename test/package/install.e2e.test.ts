/**
 * The package as users get it: `npm pack`, installed into a fresh cdktf project outside the
 * repository, used from a small stack, synthesized.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, run } from '../helpers/run.js';

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));

describe('the packed library in a fresh cdktf project', () => {
  const work = mkdtempSync(join(tmpdir(), 'sessionfleet-pack-'));
  const project = join(work, 'user-stack');
  let files: string[] = [];
  let tarballPath = '';

  beforeAll(async () => {
    const pack = await run('npm', ['pack', '--json', '--pack-destination', work]);
    expect(pack.code, pack.stderr).toBe(0);
    const [info] = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    files = info!.files.map((f) => f.path);
    const tarball = join(work, info!.filename);
    tarballPath = tarball;

    await run('mkdir', ['-p', project]);
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'user-stack', private: true, type: 'module' }, null, 2),
    );
    const install = await run(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        tarball,
        `cdktf@${pkg.devDependencies.cdktf}`,
        `constructs@${pkg.devDependencies.constructs}`,
        `@cdktf/provider-kubernetes@${pkg.devDependencies['@cdktf/provider-kubernetes']}`,
        `@cdktf/provider-azurerm@${pkg.devDependencies['@cdktf/provider-azurerm']}`,
      ],
      { cwd: project },
    );
    expect(install.code, install.stderr).toBe(0);
  }, 600_000);

  it('ships the build, the types, the schema and the bin, and no tests or caches', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'bin/sessionfleet-agent.js',
        'dist/constructs/index.js',
        'dist/constructs/index.d.ts',
        'dist/policy/index.d.ts',
        'dist/agent/cli.js',
        'schema/policy.schema.json',
        'package.json',
        'README.md',
        // The README's "SPEC.md §N" and fleet links point into docs/.
        'docs/SPEC.md',
        'docs/fleet.md',
      ]),
    );
    for (const f of files) {
      expect(f).not.toMatch(/^(test|bench|stacks|\.ci)\/|tsbuildinfo|\.map$|\.vitest|^src\//);
    }
  });

  it('synthesizes a user stack that uses the library', async () => {
    writeFileSync(join(project, 'main.mjs'), readFileSync(join(REPO_ROOT, 'test/package/user-stack.mjs'), 'utf8'));
    const result = await run(process.execPath, ['main.mjs'], {
      cwd: project,
      env: { CDKTF_OUTDIR: join(project, 'cdktf.out') },
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('user stack synthesized');
    const stack = JSON.parse(readFileSync(join(project, 'cdktf.out/stacks/user/cdk.tf.json'), 'utf8'));
    expect(Object.keys(stack.resource ?? {}).length).toBeGreaterThan(0);
  });

  it('runs the agent bin from the installed package', async () => {
    const policy = join(project, 'policy.json');
    writeFileSync(policy, JSON.stringify({ affinity: { type: 'cookie' } }));
    const result = await run(join(project, 'node_modules/.bin/sessionfleet-agent'), ['check-policy', policy], {
      cwd: project,
    });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).expiredSessionStatus).toBe(401);
  });

  it('exposes the JSON Schema as a package export', async () => {
    const result = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { createRequire } from 'node:module'; const r = createRequire(import.meta.url); console.log(r.resolve('sessionfleet/policy.schema.json'))",
      ],
      { cwd: project },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toMatch(/node_modules\/sessionfleet\/schema\/policy\.schema\.json$/);
  });

  it('works for an Azure-only project through sessionfleet/azure, without the Kubernetes provider', async () => {
    const azureOnly = join(work, 'azure-only');
    await run('mkdir', ['-p', azureOnly]);
    writeFileSync(
      join(azureOnly, 'package.json'),
      JSON.stringify({ name: 'azure-only', private: true, type: 'module' }),
    );
    const install = await run(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        tarballPath,
        `cdktf@${pkg.devDependencies.cdktf}`,
        `constructs@${pkg.devDependencies.constructs}`,
        `@cdktf/provider-azurerm@${pkg.devDependencies['@cdktf/provider-azurerm']}`,
      ],
      { cwd: azureOnly },
    );
    expect(install.code, install.stderr).toBe(0);
    expect(existsSync(join(azureOnly, 'node_modules/@cdktf/provider-kubernetes'))).toBe(false);
    writeFileSync(
      join(azureOnly, 'main.mjs'),
      readFileSync(join(REPO_ROOT, 'test/package/azure-only-stack.mjs'), 'utf8'),
    );
    const result = await run(process.execPath, ['main.mjs'], {
      cwd: azureOnly,
      env: { CDKTF_OUTDIR: join(azureOnly, 'cdktf.out') },
    });
    expect(result.code, result.stderr).toBe(0);
    const stack = JSON.parse(readFileSync(join(azureOnly, 'cdktf.out/stacks/azure-user/cdk.tf.json'), 'utf8'));
    expect(Object.keys(stack.resource.azurerm_container_group)).toHaveLength(2);
  }, 600_000);
});
