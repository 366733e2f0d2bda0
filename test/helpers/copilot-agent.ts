/**
 * The agent as a real process in front of a Copilot CLI: `node --import tsx agent/cli.ts` with a
 * policy file, a principals file and `--upstream tcp://...`, listening on free loopback ports that
 * are read from its "agent listening" log line. Its whole output is kept, to assert on log lines
 * (and that no token ever appears in them).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PrincipalEntry } from '../../agent/core/principals.js';
import { stopProcess } from './copilot-cli.js';
import { REPO_ROOT } from './run.js';

export interface CopilotAgent {
  readonly clientPort: number;
  readonly adminPort: number;
  /** `127.0.0.1:PORT` of the client listener, as `RuntimeConnection.forUri` takes it. */
  readonly address: string;
  readonly adminUrl: string;
  readonly process: ChildProcess;
  /** Everything the agent wrote to stdout and stderr so far. */
  output(): string;
  /** The JSON log lines so far. */
  logs(): Array<Record<string, unknown>>;
  /** Resolves with the first log line matching, polling for up to `timeoutMs`. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Sends `signal` and resolves with the exit code once the process is gone. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Resolves with the exit code once the process exits by itself (fails after `timeoutMs`). */
  exited(timeoutMs?: number): Promise<number | null>;
  dispose(): Promise<void>;
}

export interface StartAgentOptions {
  policy: Record<string, unknown>;
  upstreamPort: number;
  upstreamToken?: string;
  /** token → principal (or principal and tenant); omitted: no `--principals`. */
  principals?: Record<string, PrincipalEntry>;
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /**
   * `--unhealthy-after-ms`: how long the CLI may not answer before `/healthz` fails. 5000 by
   * default, so a working CLI on a loaded machine is not taken for down (creates refused
   * `UPSTREAM_UNAVAILABLE`); a test that kills the CLI and waits for `/healthz` asks for less.
   */
  unhealthyAfterMs?: number;
}

export async function startCopilotAgent(options: StartAgentOptions): Promise<CopilotAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'sessionfleet-copilot-agent-'));
  const policyFile = join(dir, 'policy.json');
  writeFileSync(policyFile, JSON.stringify(options.policy));
  const args = [
    '--import',
    'tsx',
    'agent/cli.ts',
    '--policy',
    policyFile,
    '--upstream',
    `tcp://127.0.0.1:${options.upstreamPort}`,
    '--listen',
    '127.0.0.1:0',
    '--admin-listen',
    '127.0.0.1:0',
    '--instance-id',
    'copilot-test',
    '--probe-interval-ms',
    '200',
    '--unhealthy-after-ms',
    String(options.unhealthyAfterMs ?? 5000),
    ...(options.extraArgs ?? []),
  ];
  if (options.upstreamToken !== undefined) args.push('--upstream-token', options.upstreamToken);
  if (options.principals) {
    const principalsFile = join(dir, 'principals.json');
    writeFileSync(principalsFile, JSON.stringify(options.principals));
    args.push('--principals', principalsFile);
  }
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const logs = () =>
    output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  const waitForLog = async (match: (line: Record<string, unknown>) => boolean, timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = logs().find(match);
      if (found) return found;
      if (child.exitCode !== null) throw new Error(`the agent exited (${child.exitCode}):\n${output}`);
      if (Date.now() > deadline) throw new Error(`no matching agent log line within ${timeoutMs} ms:\n${output}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  let listening: Record<string, unknown>;
  try {
    listening = await waitForLog((l) => l.msg === 'agent listening', 30_000);
  } catch (error) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const clientPort = (listening.client as { port: number }).port;
  const adminPort = (listening.admin as { port: number }).port;
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    await stopProcess(child, signal);
    return child.exitCode;
  };
  const exited = (timeoutMs = 30_000) =>
    new Promise<number | null>((resolve, reject) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        resolve(child.exitCode);
        return;
      }
      const timer = setTimeout(() => reject(new Error(`the agent did not exit within ${timeoutMs} ms`)), timeoutMs);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  return {
    clientPort,
    adminPort,
    address: `127.0.0.1:${clientPort}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    process: child,
    output: () => output,
    logs,
    waitForLog,
    stop,
    exited,
    async dispose() {
      await stopProcess(child, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
