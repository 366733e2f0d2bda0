/**
 * agent/Dockerfile, the image KubernetesSessionFleet runs by default, checked for its structure
 * (no Docker engine is needed): two stages, runtime dependencies only, a non-root user, and every
 * file the runtime needs copied and inside the build context.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_AGENT_IMAGE } from '../../constructs/index.js';
import { AGENT_EXECUTABLE } from '../../policy/agent-interface.js';
import { REPO_ROOT } from '../helpers/run.js';

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

interface Stage {
  readonly from: string;
  readonly name?: string;
  readonly instructions: Instruction[];
}

/** Splits a Dockerfile into stages of instructions (comments dropped, continuation lines joined). */
function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, keyword = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const upper = keyword.toUpperCase();
    if (upper === 'FROM') {
      const [image = '', as, name] = rest.split(/\s+/);
      const from = image.replace(/\$\{(\w+)\}/g, (_, arg: string) => args.get(arg) ?? '');
      stages.push({ from, ...(as?.toUpperCase() === 'AS' && name ? { name } : {}), instructions: [] });
    } else if (stages.length === 0 && upper === 'ARG') {
      const [name = '', value = ''] = rest.split('=');
      args.set(name, value);
    } else {
      stages.at(-1)?.instructions.push({ keyword: upper, args: rest });
    }
  }
  return { args, stages };
}

/** .dockerignore's rule for a top-level path: the last matching pattern wins. */
function inBuildContext(patterns: readonly string[], path: string): boolean {
  const top = path.split('/')[0]!;
  let included = true;
  for (const pattern of patterns) {
    const negated = pattern.startsWith('!');
    const body = (negated ? pattern.slice(1) : pattern).replace(/\/$/, '');
    if (body === '*' || body === top || body === path) included = negated;
  }
  return included;
}

const dockerfile = readFileSync(join(REPO_ROOT, 'agent/Dockerfile'), 'utf8');
const dockerignore = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'));
const { stages } = parseDockerfile(dockerfile);
const runtime = stages.at(-1)!;
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));

describe('agent/Dockerfile', () => {
  it('builds in one Node 20 stage and runs from another', () => {
    expect(stages.map((s) => [s.name, s.from])).toEqual([
      ['build', 'node:20-bookworm-slim'],
      ['runtime', 'node:20-bookworm-slim'],
    ]);
    const build = stages[0]!.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(build).toEqual(['npm ci --ignore-scripts --no-audit --no-fund', 'npm run build']);
  });

  it('installs runtime dependencies only: no dev and no peer dependencies (cdktf, providers)', () => {
    const installs = runtime.instructions.filter((i) => i.keyword === 'RUN' && i.args.includes('npm '));
    expect(installs).toHaveLength(1);
    expect(installs[0]!.args).toMatch(/^npm ci .*--omit=dev/);
    expect(installs[0]!.args).toContain('--omit=peer');
    // Nothing comes over from the build stage but compiled output.
    const fromBuild = runtime.instructions.filter((i) => i.keyword === 'COPY' && i.args.startsWith('--from='));
    expect(fromBuild.map((i) => i.args)).toEqual([
      '--from=build /src/dist/agent ./dist/agent',
      '--from=build /src/dist/policy ./dist/policy',
    ]);
  });

  it('runs as a non-root user with the agent bin as its entrypoint', () => {
    const users = runtime.instructions.filter((i) => i.keyword === 'USER').map((i) => i.args);
    expect(users).toEqual(['node']);
    const last = runtime.instructions.at(-1)!;
    expect(last).toEqual({ keyword: 'ENTRYPOINT', args: '["node", "bin/sessionfleet-agent.js"]' });
    expect(existsSync(join(REPO_ROOT, 'bin/sessionfleet-agent.js'))).toBe(true);
    // The bin loads the compiled CLI from dist/agent, which the runtime stage copies.
    expect(readFileSync(join(REPO_ROOT, 'bin/sessionfleet-agent.js'), 'utf8')).toContain("'../dist/agent/cli.js'");
    expect(runtime.instructions.filter((i) => i.keyword === 'EXPOSE').map((i) => i.args)).toEqual(['8080 9090']);
  });

  it('puts the agent on the PATH under the name the Azure constructs start it by', () => {
    // Azure container groups and apps replace the entrypoint with [AGENT_EXECUTABLE, ...flags].
    expect(pkg.bin).toEqual({ [AGENT_EXECUTABLE]: 'bin/sessionfleet-agent.js' });
    const workdir = runtime.instructions.find((i) => i.keyword === 'WORKDIR')!.args;
    const links = runtime.instructions.filter((i) => i.keyword === 'RUN' && i.args.startsWith('ln '));
    expect(links.map((i) => i.args)).toEqual([
      `ln -s ${workdir}/bin/sessionfleet-agent.js /usr/local/bin/${AGENT_EXECUTABLE}`,
    ]);
    // Made as root, before the image switches to its unprivileged user.
    const at = (i: { keyword: string }) => runtime.instructions.indexOf(i as (typeof runtime.instructions)[number]);
    expect(at(links[0]!)).toBeLessThan(at(runtime.instructions.find((i) => i.keyword === 'USER')!));
    expect(runtime.instructions.some((i) => i.keyword === 'COPY' && i.args === 'bin ./bin')).toBe(true);
  });

  it('copies only files that exist and that .dockerignore keeps in the build context', () => {
    const sources = stages
      .flatMap((s) => s.instructions)
      .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from='))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(sources).toEqual([
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.build.json',
      'policy',
      'constructs',
      'agent',
      'package.json',
      'package-lock.json',
      'bin',
      'schema',
    ]);
    for (const source of sources) {
      expect(existsSync(join(REPO_ROOT, source)), source).toBe(true);
      expect(inBuildContext(dockerignore, source), source).toBe(true);
    }
    for (const excluded of ['node_modules', 'dist', 'test', 'stacks', 'cdktf.out', '.git']) {
      expect(inBuildContext(dockerignore, excluded), excluded).toBe(false);
    }
  });

  it('needs nothing at run time that is not a runtime dependency', () => {
    const runtimeDependencies = new Set(Object.keys(pkg.dependencies));
    const imported = new Set<string>();
    for (const dir of ['agent', 'policy']) {
      for (const file of readdirSync(join(REPO_ROOT, dir)).filter((f) => f.endsWith('.ts'))) {
        const source = readFileSync(join(REPO_ROOT, dir, file), 'utf8');
        for (const [, specifier] of source.matchAll(/^import (?!type )[^;]*?from '([^'.][^']*)'/gm)) {
          if (!specifier!.startsWith('node:'))
            imported.add(
              specifier!
                .split('/')
                .slice(0, specifier!.startsWith('@') ? 2 : 1)
                .join('/'),
            );
        }
      }
    }
    expect(imported.size).toBeGreaterThan(0);
    for (const name of imported) expect(runtimeDependencies.has(name), `${name} is a runtime dependency`).toBe(true);
  });

  it("is the image the constructs use by default, tagged with the package's version", () => {
    expect(DEFAULT_AGENT_IMAGE).toBe(`ghcr.io/sessionfleet/agent:${pkg.version}`);
  });
});
