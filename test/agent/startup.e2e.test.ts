import { mkdtempSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runAgentCli } from '../helpers/run.js';

const dir = mkdtempSync(join(tmpdir(), 'sessionfleet-startup-'));
const policy = join(dir, 'policy.json');
writeFileSync(policy, JSON.stringify({ affinity: { type: 'cookie' } }));

describe('agent start-up errors', () => {
  it('lists every policy error with the flag and exits 2, without a stack trace', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ affinity: { type: 'header' }, sessionsPerInstance: 0 }));
    const result = await runAgentCli([
      '--policy',
      bad,
      '--upstream',
      'http://127.0.0.1:9',
      '--listen',
      '127.0.0.1:0',
      '--admin-listen',
      '127.0.0.1:0',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'sessionfleet-agent: cannot start:\n' +
        `  - --policy ${bad}: affinity.headerName is required\n` +
        `  - --policy ${bad}: sessionsPerInstance (0) must be between 1 and 200\n`,
    );
  });

  it('refuses a tcp:// upstream for an HTTP affinity', async () => {
    const result = await runAgentCli([
      '--policy',
      policy,
      '--upstream',
      'tcp://127.0.0.1:9',
      '--listen',
      '127.0.0.1:0',
      '--admin-listen',
      '127.0.0.1:0',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'sessionfleet-agent: cannot start:\n  - --upstream (tcp://127.0.0.1:9) must be http://host:port for affinity.type "cookie"\n',
    );
  });

  it.each(['--listen', '--admin-listen'])('names %s when its port is taken', async (flag) => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      const ports = { '--listen': '127.0.0.1:0', '--admin-listen': '127.0.0.1:0', [flag]: `127.0.0.1:${port}` };
      const result = await runAgentCli([
        '--policy',
        policy,
        '--upstream',
        'http://127.0.0.1:9',
        ...Object.entries(ports).flat(),
      ]);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(
        `sessionfleet-agent: cannot start:\n  - ${flag} (127.0.0.1:${port}): the address is already in use: stop what listens there, or choose another port\n`,
      );
    } finally {
      taken.close();
    }
  });

  it('reports an unreadable principals file by its flag', async () => {
    const principals = join(dir, 'principals.json');
    writeFileSync(principals, JSON.stringify({ short: 'alice' }));
    const result = await runAgentCli([
      '--policy',
      policy,
      '--upstream',
      'http://127.0.0.1:9',
      '--listen',
      '127.0.0.1:0',
      '--admin-listen',
      '127.0.0.1:0',
      '--principals',
      principals,
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `sessionfleet-agent: cannot start:\n  - --principals ${principals}: entry 1: its token has 5 characters, at least 8 are required\n`,
    );
  });

  it('refuses tenant isolation without --tenant, naming the flag and the rule', async () => {
    const tenantPolicy = join(dir, 'tenant.json');
    writeFileSync(tenantPolicy, JSON.stringify({ isolation: 'tenant', affinity: { type: 'cookie' } }));
    const args = [
      '--policy',
      tenantPolicy,
      '--upstream',
      'http://127.0.0.1:9',
      '--listen',
      '127.0.0.1:0',
      '--admin-listen',
      '127.0.0.1:0',
    ];
    const result = await runAgentCli(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'sessionfleet-agent: cannot start:\n' +
        '  - --tenant is required (or set SESSIONFLEET_TENANT) by the policy\'s isolation "tenant": an instance serves exactly one tenant, and refuses the others\n',
    );
  });
});
