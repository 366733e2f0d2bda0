/**
 * The proof that the agent is a correct MCP intermediary: the official conformance suite's server
 * scenarios (`@modelcontextprotocol/conformance`, run by its own Node 22) against the SDK v2
 * reference server direct, through one agent, and through two agents of one fleet (the run's
 * redis-server) behind a plain round-robin balancer, for 2025-11-25 and 2026-07-28. Through the
 * agents every scenario must come out as it does direct, check by check, except what
 * `expected-failures.ts` lists with its reason. The table is printed and written to
 * `.conformance-table.md` (`.ci/run` prints it at the end of CI).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stopAll } from '../helpers/http-agent-process.js';
import { REPO_ROOT } from '../helpers/run.js';
import { compare, ensureSuite, REVISIONS, type Results, runAll, SETUPS, type Setups, startSetups } from './harness.js';

let results: Results;
let setups: Setups | undefined;
let comparison: ReturnType<typeof compare>;

beforeAll(async () => {
  const started = Date.now();
  const suite = await ensureSuite();
  setups = await startSetups(inject('redisUrl'));
  const run = await runAll(suite, setups, (line) => console.log(line));
  results = run.results;
  comparison = compare(results);
  const timing = `suite ${suite.version}; suite time: direct ${run.seconds.direct.toFixed(0)} s, one agent ${run.seconds['one agent'].toFixed(0)} s, two agents ${run.seconds['two agents'].toFixed(0)} s; total with set-up ${((Date.now() - started) / 1000).toFixed(0)} s`;
  writeFileSync(join(REPO_ROOT, '.conformance-table.md'), `${comparison.table}\n\n${timing}\n`);
  console.log(`${comparison.table}\n\n${timing}`);
}, 900_000);

afterAll(async () => {
  await setups?.close();
  await stopAll();
});

describe('MCP conformance suite: direct, one agent, two agents behind a round-robin balancer', () => {
  it.each(REVISIONS)('%s: the suite ran the same scenarios in every set-up', (revision) => {
    const direct = [...results[revision].direct.keys()].sort();
    expect(direct.length).toBeGreaterThan(20);
    expect([...results[revision]['one agent'].keys()].sort()).toEqual(direct);
    expect([...results[revision]['two agents'].keys()].sort()).toEqual(direct);
  });

  it.each(REVISIONS)('%s: direct, the reference server passes every scenario', (revision) => {
    const failing = [...results[revision].direct].filter(([, r]) => r.failed > 0).map(([s, r]) => [s, r.failures]);
    expect(failing).toEqual([]);
  });

  it.each(REVISIONS)(
    '%s: DNS-rebinding protection holds through the agents (the agent checks Host and Origin)',
    (revision) => {
      for (const setup of SETUPS) {
        expect({ setup, result: results[revision][setup].get('dns-rebinding-protection') }).toMatchObject({
          setup,
          result: { failed: 0 },
        });
      }
    },
  );

  it('through one agent and through two agents, every scenario comes out as direct (but the listed expected failures)', () => {
    expect(comparison.problems).toEqual([]);
  });
});
