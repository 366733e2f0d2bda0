/**
 * The shipped Grafana dashboard and Prometheus rules name only metrics a real agent exports, the
 * committed dashboard is what scripts/gen-dashboard.ts makes, and — where promtool is installed
 * (Debian's `prometheus` package; .ci/run installs it) — the rules load and their unit tests pass.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDashboard, DASHBOARD_FILE } from '../../scripts/gen-dashboard.js';
import { startTestAgent, type TestAgent } from '../agent/http/harness.js';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js';

const RULES = fileURLToPath(new URL('../../deploy/prometheus/sessionfleet-rules.yml', import.meta.url));
const RULE_TESTS = fileURLToPath(new URL('../../deploy/prometheus/sessionfleet-rules.test.yml', import.meta.url));

function promtool(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Metric names a PromQL text uses (ours all start with `sessionfleet_`). */
function metricsIn(text: string): Set<string> {
  return new Set(text.match(/\bsessionfleet_[a-z0-9_]+/g) ?? []);
}

/** Every series name the exposition offers: a histogram `x` also answers to x_bucket, x_count, x_sum. */
function exported(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const match of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = match as unknown as [string, string, string];
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_count', '_sum']) names.add(name + suffix);
    if (type === 'summary') for (const suffix of ['_count', '_sum']) names.add(name + suffix);
  }
  return names;
}

let redis: RedisServer;
let agent: TestAgent;
let exposition: string;

beforeAll(async () => {
  redis = await startRedisServer();
  // With --redis the fleet layer registers its metrics too: the dashboard covers both.
  agent = await startTestAgent({ affinity: { type: 'header', headerName: 'x-session' } }, 'http://127.0.0.1:9', [
    '--redis',
    redis.url,
  ]);
  exposition = await (await fetch(`${agent.adminUrl}/metrics`)).text();
});
afterAll(async () => {
  await agent?.stop();
  await redis?.stop();
});

describe('the Grafana dashboard', () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as { panels: Array<Record<string, unknown>> };
  const exprs = dashboard.panels.flatMap((panel) =>
    ((panel.targets as Array<{ expr: string }> | undefined) ?? []).map((target) => target.expr),
  );

  it('is the one scripts/gen-dashboard.ts writes', () => {
    expect(dashboard).toEqual(buildDashboard());
  });

  it('queries only metrics the agent exports', () => {
    expect(exprs.length).toBeGreaterThan(10);
    const missing = [...metricsIn(exprs.join('\n'))].filter((name) => !exported(exposition).has(name));
    expect(missing).toEqual([]);
  });

  it('covers sessions, placement, refusals, requests, hops, Redis, upstream and drain', () => {
    const used = metricsIn(exprs.join('\n'));
    for (const name of [
      'sessionfleet_active_sessions',
      'sessionfleet_session_utilization',
      'sessionfleet_fleet_outcomes_total',
      'sessionfleet_rejections_total',
      'sessionfleet_request_duration_seconds_bucket',
      'sessionfleet_fleet_redis_up',
      'sessionfleet_upstream_up',
      'sessionfleet_draining',
      'sessionfleet_fleet_ownership_conflicts_total',
    ])
      expect(used).toContain(name);
  });
});

describe('the Prometheus alert rules', () => {
  const rules = readFileSync(RULES, 'utf8');

  it('name only metrics the agent exports', () => {
    const used = metricsIn(rules);
    expect(used.size).toBeGreaterThanOrEqual(6);
    expect([...used].filter((name) => !exported(exposition).has(name))).toEqual([]);
  });

  it.skipIf(promtool() === undefined)('load in promtool and pass their unit tests', () => {
    const tool = promtool()!;
    expect(execFileSync(tool, ['check', 'rules', RULES], { encoding: 'utf8' })).toContain('SUCCESS: 6 rules found');
    expect(execFileSync(tool, ['test', 'rules', RULE_TESTS], { encoding: 'utf8' })).toContain('SUCCESS');
  });

  it.skipIf(promtool() === undefined)('fail their unit tests when a threshold is changed (the tests can fail)', () => {
    const tool = promtool()!;
    const dir = mkdtempSync(join(tmpdir(), 'sessionfleet-rules-'));
    const loose = rules.replace('sessionfleet_upstream_up == 0', 'sessionfleet_upstream_up == 1');
    writeFileSync(join(dir, 'sessionfleet-rules.yml'), loose);
    copyFileSync(RULE_TESTS, join(dir, 'sessionfleet-rules.test.yml'));
    try {
      expect(() =>
        execFileSync(tool, ['test', 'rules', join(dir, 'sessionfleet-rules.test.yml')], { stdio: 'pipe' }),
      ).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
