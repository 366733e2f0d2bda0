/** The command lines behave like Unix tools: --help, --version, "did you mean", one-line errors, documented exit codes. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, run, runAgentCli } from '../helpers/run.js';

const VERSION = (JSON.parse(readFileSync(`${REPO_ROOT}/package.json`, 'utf8')) as { version: string }).version;
const STACK_FRAME = /\bat .+:\d+:\d+/;

describe('sessionfleet-agent', () => {
  it('--help prints every command, every flag with its variable, and the exit codes, on stdout', async () => {
    const result = await runAgentCli(['--help']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^usage: sessionfleet-agent \[flags\] /);
    expect(result.stdout).toContain('sessionfleet-agent check-policy <file>');
    expect(result.stdout).toMatch(/--policy +SESSIONFLEET_POLICY +the policy file/);
    expect(result.stdout).toMatch(/--admin-listen +SESSIONFLEET_ADMIN_LISTEN /);
    expect(result.stdout).toMatch(/exit codes:\n {2}0 +.+\n {2}1 +.+\n {2}2 +usage or configuration error/);
  });

  it('--version prints the package version and nothing else', async () => {
    for (const flag of ['--version', '-V']) {
      const result = await runAgentCli([flag]);
      expect(result).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
    }
  });

  it('suggests the flag meant, on one line, exit 2', async () => {
    const result = await runAgentCli(['--polcy', 'policy.json', '--upstream', 'http://127.0.0.1:1']);
    expect(result).toEqual({
      code: 2,
      stdout: '',
      stderr: "sessionfleet-agent: unknown flag --polcy (did you mean --policy?); see 'sessionfleet-agent --help'\n",
    });
  });

  it('suggests the subcommand meant, and lists them when nothing is near', async () => {
    const near = await runAgentCli(['chek-policy', 'policy.json']);
    expect(near).toEqual({
      code: 2,
      stdout: '',
      stderr:
        'sessionfleet-agent: unknown command "chek-policy" (did you mean check-policy?); see \'sessionfleet-agent --help\'\n',
    });
    const far = await runAgentCli(['deploy']);
    expect(far.code).toBe(2);
    expect(far.stderr).toBe(
      'sessionfleet-agent: unknown command "deploy" (the commands are check-policy, print-schema, admin, help); see \'sessionfleet-agent --help\'\n',
    );
  });

  it("check-policy --help and help check-policy print the command's usage", async () => {
    for (const args of [
      ['check-policy', '--help'],
      ['help', 'check-policy'],
    ]) {
      const result = await runAgentCli(args);
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
      expect(result.stdout).toMatch(/^usage: sessionfleet-agent check-policy <file>\n/);
      expect(result.stdout).toContain('exit codes:');
    }
  });

  it('check-policy refuses an unknown flag or a second file in one line', async () => {
    const flag = await runAgentCli(['check-policy', '--strictt', 'p.json']);
    expect(flag).toEqual({
      code: 2,
      stdout: '',
      stderr:
        "sessionfleet-agent: check-policy: unknown flag --strictt; see 'sessionfleet-agent check-policy --help'\n",
    });
    const two = await runAgentCli(['check-policy', 'a.json', 'b.json']);
    expect(two.code).toBe(2);
    expect(two.stderr).toBe(
      'sessionfleet-agent: check-policy: too many arguments: "b.json"; see \'sessionfleet-agent check-policy --help\'\n',
    );
  });

  it('a flag without its value, or a missing required flag, is one line, not the whole usage', async () => {
    const missingValue = await runAgentCli(['--policy']);
    expect(missingValue).toEqual({
      code: 2,
      stdout: '',
      stderr: "sessionfleet-agent: --policy needs a value; see 'sessionfleet-agent --help'\n",
    });
    const env = { SESSIONFLEET_POLICY: '', SESSIONFLEET_UPSTREAM: '' };
    const required = await runAgentCli(['--upstream', 'http://127.0.0.1:1'], env);
    expect(required.stderr).toBe(
      "sessionfleet-agent: --policy is required (or set SESSIONFLEET_POLICY); see 'sessionfleet-agent --help'\n",
    );
    expect(required.code).toBe(2);
  });

  it('several configuration problems: one line each, then where help is, exit 2, no stack trace', async () => {
    const result = await runAgentCli(['--listen', 'nowhere', '--log-level', 'loud'], {
      SESSIONFLEET_POLICY: '',
      SESSIONFLEET_UPSTREAM: '',
    });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr.split('\n')).toEqual([
      'sessionfleet-agent: invalid configuration:',
      '  - --policy is required (or set SESSIONFLEET_POLICY)',
      '  - --upstream is required (or set SESSIONFLEET_UPSTREAM)',
      '  - --listen ("nowhere") must be host:port, e.g. 127.0.0.1:8080 or [::1]:8080',
      '  - --log-level ("loud") must be one of fatal, error, warn, info, debug, trace, silent',
      "see 'sessionfleet-agent --help'",
      '',
    ]);
    expect(result.stderr).not.toMatch(STACK_FRAME);
  });
});

describe('npm run demo', () => {
  const demo = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'demo/run.ts', ...args]);

  it('--help prints its flags and exit codes; --version the package version', async () => {
    const help = await demo(['--help']);
    expect(help.code).toBe(0);
    expect(help.stderr).toBe('');
    expect(help.stdout).toMatch(/^usage: npm run demo -- \[flags\]\n/);
    expect(help.stdout).toContain('--affinity <type>');
    expect(help.stdout).toContain('exit codes: 0 success, 1 the demo failed while running, 2 usage error');
    expect(await demo(['--version'])).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
  });

  it('an unknown flag gets a "did you mean" on one line, exit 2, no stack trace', async () => {
    const result = await demo(['--afinity', 'mcp-sse']);
    expect(result).toEqual({
      code: 2,
      stdout: '',
      stderr: "demo: unknown flag --afinity (did you mean --affinity?); see 'npm run demo -- --help'\n",
    });
    const value = await demo(['--affinity', 'websocket']);
    expect(value.code).toBe(2);
    expect(value.stderr).toBe(
      'demo: --affinity must be mcp-streamable-http or mcp-sse, not "websocket"; see \'npm run demo -- --help\'\n',
    );
  });
});
