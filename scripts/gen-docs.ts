/**
 * Writes the reference pages under docs/reference/ and the TSDoc'd `policy/policy-input.ts` from
 * the code (`npm run docs`); with `--check`, writes nothing and exits 1 naming every file that is
 * stale or missing (`npm run docs:check`, run by CI). `--out <dir>` writes or checks a copy
 * elsewhere (tests). Where each page reads from: scripts/docs/sources.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCommandLine, UsageError } from '../agent/cli-args.js';
import { agentFlagsPage, cliPage, errorsPage, metricsPage } from './docs/agent.js';
import { constructsPage } from './docs/constructs.js';
import { anchor, page, table } from './docs/markdown.js';
import { policyInputSource, policyPage } from './docs/policy.js';
import { POLICY_INPUT_FILE } from './docs/sources.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** "2" → "2-isolation-modes", from docs/SPEC.md's numbered headings. */
function specSections(): Map<string, string> {
  const sections = new Map<string, string>();
  for (const line of readFileSync(join(ROOT, 'docs', 'SPEC.md'), 'utf8').split('\n')) {
    const m = /^## (\d+)\. (.+)$/.exec(line);
    if (m?.[1]) sections.set(m[1], anchor(`${m[1]}. ${m[2]}`));
  }
  return sections;
}

/** A file as Biome formats it (TypeScript, and Markdown tables aligned), so `npm run lint` and the check agree. */
function formatted(path: string, text: string): string {
  const biome = join(ROOT, 'node_modules', '.bin', 'biome');
  const result = spawnSync(biome, ['format', `--stdin-file-path=${path}`], {
    input: text,
    encoding: 'utf8',
    cwd: ROOT,
  });
  if (result.status !== 0) throw new Error(`gen-docs: biome could not format ${path}: ${result.stderr.trim()}`);
  return result.stdout;
}

const REFERENCE_PAGES = [
  ['policy.md', 'Policy fields', 'every field of the policy file: type, default, range, rules'],
  ['agent-flags.md', 'Agent flags', 'flags of `sessionfleet-agent`, their environment variables and defaults'],
  ['cli.md', 'Command line', 'commands, `--help`/`--version`, error lines and exit codes'],
  ['errors.md', 'Error catalogue', 'every rejection: code, HTTP status, JSON-RPC code, meaning'],
  ['metrics.md', 'Metrics', 'Prometheus metrics of the agent: name, type, labels, help'],
  ['constructs.md', 'Construct props', 'props and options of every construct, from their TSDoc'],
] as const;

async function render(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const ref = (name: string) => join('docs', 'reference', name);
  files.set(
    ref('README.md'),
    page(
      'Reference',
      'Generated from the code by `npm run docs`; CI fails when a page is stale (`npm run docs:check`).',
      table(
        ['page', 'what it lists'],
        REFERENCE_PAGES.map(([file, title, what]) => [`[${title}](${file})`, what]),
      ),
    ),
  );
  const sections = specSections();
  files.set(ref('policy.md'), policyPage(sections));
  files.set(ref('agent-flags.md'), agentFlagsPage());
  files.set(ref('cli.md'), cliPage());
  files.set(ref('errors.md'), errorsPage(ROOT));
  files.set(ref('metrics.md'), await metricsPage());
  files.set(ref('constructs.md'), constructsPage(ROOT, sections));
  files.set(POLICY_INPUT_FILE, policyInputSource());
  return new Map([...files].map(([path, text]) => [path, formatted(path, text)]));
}

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseCommandLine(argv, { check: { type: 'boolean' }, out: { type: 'string' } });
  const out = typeof values.out === 'string' ? resolve(values.out) : ROOT;
  const files = await render();
  if (values.check) {
    const stale = [...files].filter(([path, text]) => {
      const target = join(out, path);
      return !existsSync(target) || readFileSync(target, 'utf8') !== text;
    });
    for (const [path] of stale) process.stderr.write(`gen-docs: ${path} is stale or missing\n`);
    if (stale.length > 0) {
      process.stderr.write('gen-docs: run `npm run docs` and commit the result\n');
      return 1;
    }
    process.stdout.write(`gen-docs: ${files.size} generated files are current\n`);
    return 0;
  }
  for (const [path, text] of files) {
    const target = join(out, path);
    mkdirSync(dirname(target), { recursive: true });
    const before = existsSync(target) ? readFileSync(target, 'utf8') : undefined;
    if (before !== text) writeFileSync(target, text);
    process.stdout.write(`gen-docs: ${before === text ? 'unchanged' : 'wrote'} ${path}\n`);
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const usage = error instanceof UsageError;
    process.stderr.write(`gen-docs: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = usage ? 2 : 1;
  },
);
