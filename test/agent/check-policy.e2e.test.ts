import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runAgentCli } from '../helpers/run.js';

const dir = mkdtempSync(join(tmpdir(), 'sessionfleet-check-'));
function file(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

describe('sessionfleet-agent check-policy', () => {
  it('prints the SPEC.md §8 example normalized, every default filled in', async () => {
    const path = file('spec.json', {
      isolation: 'shared',
      affinity: { type: 'mcp-streamable-http' },
      sessionsPerInstance: 20,
      concurrencyPerInstance: 200,
      sessionLifetimeSeconds: 21600,
      sessionIdleTimeoutSeconds: 1800,
      maxInstances: 10,
      expiredSessionStatus: 404,
    });
    const result = await runAgentCli(['check-policy', path]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      isolation: 'shared',
      affinity: { type: 'mcp-streamable-http' },
      sessionsPerInstance: 20,
      concurrencyPerInstance: 200,
      sessionLifetimeSeconds: 21600,
      sessionIdleTimeoutSeconds: 1800,
      minInstances: 1,
      maxInstances: 10,
      expiredSessionStatus: 404,
      evictionPolicy: 'reject',
      drainTimeoutSeconds: 30,
      asyncInvocation: false,
      sharedSessionState: false,
      recycleAfterSession: false,
      failOpen: false,
      placementWaitSeconds: 5,
      limits: { streamsPerInstance: 100, evictIdleAfterSeconds: 120 },
    });
  });

  it('prints every error and exits 1', async () => {
    const path = file('bad.json', { isolation: 'request', affinity: { type: 'header' }, sessionsPerInstance: 300 });
    const result = await runAgentCli(['check-policy', path]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      `${path}: 3 errors:\n` +
        '  - affinity.headerName is required\n' +
        '  - sessionsPerInstance (300) must be between 1 and 200\n' +
        '  - request isolation cannot be combined with session affinity (affinity.type is "header"); use affinity.type "none"\n',
    );
  });

  it('prints warnings on stderr and still succeeds', async () => {
    const path = file('warn.json', { isolation: 'request', affinity: { type: 'none' }, concurrencyPerInstance: 8 });
    const result = await runAgentCli(['check-policy', path]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe(
      `${path}: warning: concurrencyPerInstance (8) is ignored under request isolation: it is forced to 1\n`,
    );
    expect(JSON.parse(result.stdout).concurrencyPerInstance).toBe(1);
  });

  it('reports a missing file and broken JSON without a stack trace', async () => {
    const missing = await runAgentCli(['check-policy', join(dir, 'nope.json')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`${join(dir, 'nope.json')}: cannot read the policy file (ENOENT)\n`);
    const broken = await runAgentCli(['check-policy', file('broken.json', '{"affinity": ')]);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/: 1 error:\n {2}- the policy is not valid JSON: .+\n$/);
    expect(broken.stderr).not.toMatch(/\bat .+:\d+:\d+/);
  });

  it('accepts a Function Compute configuration', async () => {
    const path = file('fc.json', {
      sessionAffinity: 'GENERATED_COOKIE',
      sessionAffinityConfig:
        '{"sessionConcurrencyPerInstance":20,"sessionTTLInSeconds":21600,"sessionIdleTimeoutInSeconds":1800}',
    });
    const result = await runAgentCli(['check-policy', path]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).affinity).toEqual({ type: 'cookie', cookieName: 'x-fc-cookie-session-id' });
  });

  it('prints usage when the file is not given', async () => {
    const result = await runAgentCli(['check-policy']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('usage: sessionfleet-agent check-policy <file>\n');
  });

  it('print-schema prints the shipped JSON Schema', async () => {
    const result = await runAgentCli(['print-schema']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).title).toBe('sessionfleet policy');
  });
});
