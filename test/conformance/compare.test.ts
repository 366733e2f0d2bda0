/**
 * The comparison behind the conformance proof, on made-up suite results: equal to direct passes,
 * any unlisted difference fails, a strict expected failure that no longer fails is stale, and one
 * that depends on the balancer's turn may pass.
 */
import { describe, expect, it } from 'vitest';
import { compare, type Results, type ScenarioResult, type SuiteResults } from './harness.js';

const pass = (checks: number): ScenarioResult => ({ passed: checks, failed: 0, failures: [] });
const fail = (passed: number, ...ids: string[]): ScenarioResult => ({
  passed,
  failed: ids.length,
  failures: ids.map((id) => `${id}: it failed`),
});
const suite = (entries: Record<string, ScenarioResult>): SuiteResults => new Map(Object.entries(entries));

function results(oneAgent: Record<string, ScenarioResult>, twoAgents: Record<string, ScenarioResult>): Results {
  const direct = { ping: pass(2), 'tasks-lifecycle': pass(9) };
  return {
    '2025-11-25': { direct: suite(direct), 'one agent': suite(direct), 'two agents': suite(direct) },
    '2026-07-28': {
      direct: suite(direct),
      'one agent': suite({ ...direct, ...oneAgent }),
      'two agents': suite({ ...direct, ...twoAgents }),
    },
  };
}

describe('conformance comparison with direct', () => {
  it('finds nothing when every set-up comes out as direct, and prints one row per revision and scenario', () => {
    const { problems, table } = compare(results({}, {}), {});
    expect(problems).toEqual([]);
    expect(table.split('\n')).toHaveLength(2 + 2 * 2);
    expect(table).toContain('| 2026-07-28 | tasks-lifecycle | pass 9/9 | pass 9/9 | pass 9/9 |');
  });

  it('reports a check that fails through an agent but not direct, naming it', () => {
    const { problems } = compare(results({ ping: fail(1, 'ping-response') }, {}), {});
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('2026-07-28 one agent ping: FAIL 1/2 against direct pass 2/2');
    expect(problems[0]).toContain('ping-response: it failed');
  });

  it('accepts a listed check, and only that check', () => {
    const expected = { 'one agent': { '2026-07-28': { 'ping:ping-response': 'known' } } };
    expect(compare(results({ ping: fail(1, 'ping-response') }, {}), expected).problems).toEqual([]);
    const other = compare(results({ ping: fail(0, 'ping-response', 'ping-other') }, {}), expected).problems;
    expect(other).toHaveLength(1);
    expect(other[0]).toContain('ping-other');
  });

  it('calls a strict entry stale when its scenario passes there', () => {
    const { problems } = compare(results({}, {}), { 'two agents': { '2026-07-28': { 'tasks-lifecycle': 'known' } } });
    expect(problems).toEqual([
      expect.stringContaining('2026-07-28 two agents tasks-lifecycle: listed as an expected failure (known)'),
    ]);
  });

  it('lets an entry that depends on the balancer turn pass or fail, and says which in the table', () => {
    const expected = {
      'two agents': { '2026-07-28': { 'tasks-lifecycle': { reason: 'no task routing', byTurn: true as const } } },
    };
    const failing = compare(results({}, { 'tasks-lifecycle': fail(3, 'a', 'b') }), expected);
    expect(failing.problems).toEqual([]);
    expect(failing.table).toContain('FAIL 3/5 (expected: tasks-lifecycle)');
    const passing = compare(results({}, {}), expected);
    expect(passing.problems).toEqual([]);
    expect(passing.table).toContain("pass 9/9 (listed as expected, passed by the balancer's turn)");
  });
});
