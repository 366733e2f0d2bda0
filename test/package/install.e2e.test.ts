/**
 * The package as users get it: `npm pack`, installed into fresh cdktf projects outside the
 * repository (CommonJS as `cdktf init --template=typescript` makes them, and ESM), used from the
 * README's getting-started programs and small stacks, synthesized.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, type RunResult, run } from '../helpers/run.js';
import { exampleFile, type Target } from './getting-started.js';

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
const work = mkdtempSync(join(tmpdir(), 'sessionfleet-pack-'));

let packed: Promise<{ tarball: string; files: string[] }> | undefined;
/** `npm pack` once for every test of this file (it builds dist/ through `prepare`). */
function pack(): Promise<{ tarball: string; files: string[] }> {
  // `prepare` runs both tsc builds: minutes on a loaded two-core machine.
  packed ??= run('npm', ['pack', '--json', '--pack-destination', work], { timeoutMs: 900_000 }).then((result) => {
    expect(result.code, result.stderr).toBe(0);
    const [info] = JSON.parse(result.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    return { tarball: join(work, info!.filename), files: info!.files.map((f) => f.path) };
  });
  return packed;
}

/** npm's output must carry no engine warning: consumers on Node 20 got EBADENGINE from cookie@2. */
function expectNoEngineWarnings(install: RunResult): void {
  expect(`${install.stdout}\n${install.stderr}`).not.toMatch(/EBADENGINE|Unsupported engine/);
}

describe('the packed library in a fresh cdktf project', () => {
  const project = join(work, 'user-stack');
  let files: string[] = [];
  let tarballPath = '';

  beforeAll(async () => {
    const packedInfo = await pack();
    files = packedInfo.files;
    const tarball = packedInfo.tarball;
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
    expectNoEngineWarnings(install);
  }, 1_200_000);

  it('ships the build, the types, the schema and the bin, and no tests or caches', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'bin/sessionfleet-agent.js',
        'dist/constructs/index.js',
        'dist/constructs/index.d.ts',
        'dist/policy/index.d.ts',
        'dist/agent/cli.js',
        // The CommonJS build, read as CommonJS through its own package.json.
        'dist/cjs/package.json',
        'dist/cjs/constructs/index.js',
        'dist/cjs/constructs/index.d.ts',
        'dist/cjs/constructs/kubernetes.js',
        'dist/cjs/constructs/azure.js',
        'dist/cjs/policy/index.d.ts',
        'schema/policy.schema.json',
        // The example stacks and the image's build files.
        'stacks/main.ts',
        'stacks/kubernetes.ts',
        'agent/Dockerfile',
        'scripts/build-image.sh',
        'scripts/run-image.sh',
        'package.json',
        'README.md',
        // The README's "SPEC.md §N" and fleet links point into docs/.
        'docs/SPEC.md',
        'docs/fleet.md',
      ]),
    );
    for (const f of files) {
      expect(f).not.toMatch(/^(test|bench|\.ci)\/|tsbuildinfo|\.map$|\.vitest|^src\//);
      expect(f).not.toMatch(/^agent\/(?!Dockerfile$)/);
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
    expectNoEngineWarnings(install);
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

const PROVIDER: Record<Target, string> = {
  kubernetes: '@cdktf/provider-kubernetes',
  azure: '@cdktf/provider-azurerm',
};
/** What each getting-started fleet must synthesize, beside its provider. */
const FLEET_RESOURCE: Record<Target, string> = {
  kubernetes: 'kubernetes_deployment_v1',
  azure: 'azurerm_container_app',
};
const PROVIDER_BLOCK: Record<Target, string> = { kubernetes: 'kubernetes', azure: 'azurerm' };
const FLEET_KIND: Record<Target, string> = {
  kubernetes: 'KubernetesSessionFleet',
  azure: 'AzureContainerAppsSessionFleet',
};
const CDKTF = join(REPO_ROOT, 'node_modules/.bin/cdktf');

/**
 * A project as `cdktf init --template=typescript` makes it: the template's own package.json,
 * tsconfig.json (CommonJS, no moduleResolution, so node10) and cdktf.json (`npx ts-node main.ts`)
 * from the installed cdktf-cli, with the dependencies its post-init hook installs (jest and its
 * types left out: they only serve the template's sample test, which is not copied). TypeScript is
 * pinned as the README says: `cdktf init` would install TypeScript 7, which ts-node cannot load.
 */
function writeCdktfInitProject(project: string, tarball: string, target: Target): void {
  const template = join(
    dirname(createRequire(import.meta.url).resolve('cdktf-cli/package.json')),
    'bundle/templates/typescript',
  );
  const base = JSON.parse(readFileSync(join(template, 'package.json'), 'utf8').replace('{{ $base }}', 'my-fleet'));
  base.dependencies = {
    cdktf: pkg.devDependencies.cdktf,
    constructs: '^10',
    sessionfleet: `file:${tarball}`,
    [PROVIDER[target]]: pkg.devDependencies[PROVIDER[target]],
  };
  base.devDependencies = {
    '@types/node': pkg.devDependencies['@types/node'],
    'ts-node': '^10.9.2',
    typescript: '~5.9.3',
  };
  writeFileSync(join(project, 'package.json'), JSON.stringify(base, null, 2));
  writeFileSync(join(project, 'tsconfig.json'), readFileSync(join(template, 'tsconfig.json')));
  const cdktfJson = readFileSync(join(template, 'cdktf.json'), 'utf8')
    .replace('{{projectId}}', 'my-fleet')
    .replace('{{sendCrashReports}}', 'false')
    .replace('{{futureFlags}}', '');
  writeFileSync(join(project, 'cdktf.json'), cdktfJson);
}

/** An ESM project from the getting-started package.json, tsconfig.json and cdktf.json (docs/constructs.md). */
function writeEsmProject(project: string, tarball: string, target: Target): void {
  const manifest = JSON.parse(exampleFile(target, 'package.json'));
  expect(manifest.dependencies.sessionfleet).toBe(`^${pkg.version}`);
  manifest.dependencies.sessionfleet = `file:${tarball}`;
  writeFileSync(join(project, 'package.json'), JSON.stringify(manifest, null, 2));
  writeFileSync(join(project, 'tsconfig.json'), exampleFile(target, 'tsconfig.json'));
  writeFileSync(join(project, 'cdktf.json'), exampleFile(target, 'cdktf.json'));
}

describe.each([
  ['CommonJS (cdktf init)', 'cjs'],
  ['ESM (NodeNext)', 'esm'],
] as const)("the README's getting-started in a %s project", (_label, flavour) => {
  describe.each(['kubernetes', 'azure'] as const)('%s', (target) => {
    const project = join(work, `getting-started-${flavour}-${target}`);
    let install: RunResult;

    beforeAll(async () => {
      const { tarball } = await pack();
      mkdirSync(project, { recursive: true });
      if (flavour === 'cjs') writeCdktfInitProject(project, tarball, target);
      else writeEsmProject(project, tarball, target);
      writeFileSync(join(project, 'main.ts'), exampleFile(target, 'main.ts'));
      install = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: project });
      expect(install.code, install.stderr).toBe(0);
    }, 1_200_000);

    it('installs without engine warnings', () => {
      expectNoEngineWarnings(install);
    });

    it(`resolves sessionfleet/${target} to the ${flavour === 'cjs' ? 'CommonJS' : 'ESM'} build, at run time and in tsc`, async () => {
      const build = flavour === 'cjs' ? 'dist/cjs/constructs' : 'dist/constructs';
      const resolve =
        flavour === 'cjs'
          ? ['-e', `console.log(require.resolve('sessionfleet/${target}'))`]
          : ['--input-type=module', '-e', `console.log(import.meta.resolve('sessionfleet/${target}'))`];
      const runtime = await run(process.execPath, resolve, { cwd: project });
      expect(runtime.code, runtime.stderr).toBe(0);
      expect(runtime.stdout.trim()).toMatch(new RegExp(`node_modules/sessionfleet/${build}/${target}\\.js$`));

      const tsc = await run(join(project, 'node_modules/.bin/tsc'), ['--noEmit', '--listFiles', '-p', '.'], {
        cwd: project,
      });
      expect(tsc.code, tsc.stdout).toBe(0);
      expect(tsc.stdout).toContain(`node_modules/sessionfleet/${build}/${target}.d.ts`);
    }, 300_000);

    it('synthesizes with `cdktf synth` and prints the fleet summary', async () => {
      const synth = await run(CDKTF, ['synth'], { cwd: project, env: { CHECKPOINT_DISABLE: '1' }, timeoutMs: 600_000 });
      expect(synth.code, `${synth.stdout}\n${synth.stderr}`).toBe(0);
      expect(synth.stdout).toContain('sessionfleet: 1 fleet');
      // Azure fleets derive a globally unique resource name; Kubernetes ones use the construct id.
      expect(synth.stdout).toMatch(new RegExp(`mcp-fleet/mcp \\(${FLEET_KIND[target]} "[\\w-]+"\\): \\d+ resources`));
      // The example names its own agent image: no unpublished-image warning.
      expect(`${synth.stdout}\n${synth.stderr}`).not.toMatch(/is not published yet/);
      const stack = JSON.parse(readFileSync(join(project, 'cdktf.out/stacks/mcp-fleet/cdk.tf.json'), 'utf8'));
      expect(Object.keys(stack.provider ?? {})).toContain(PROVIDER_BLOCK[target]);
      expect(Object.keys(stack.resource ?? {})).toContain(FLEET_RESOURCE[target]);
    }, 600_000);
  });
});
