/**
 * The real GitHub Copilot CLI from npm (`@github/copilot`), as a test peer: `copilot --headless
 * --port N` on a free loopback port, with a temporary HOME (its session state lives in
 * `<home>/.copilot/session-state/`) and `COPILOT_CONNECTION_TOKEN` set. It runs offline: sessions
 * can be created, listed, resumed and deleted without a GitHub token; whole turns need a session
 * pointed at the fake model (`copilot-fake-model.ts`).
 *
 * The CLI unpacks about 240 MB into its cache directory on first start (3-4 s); every CLI started
 * here shares one cache under the system temp directory, so later starts take about a second.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis-server.js';
import { REPO_ROOT } from './run.js';

export const COPILOT_BIN = join(REPO_ROOT, 'node_modules', '.bin', 'copilot');
const SHARED_CACHE = join(tmpdir(), 'sessionfleet-copilot-cli-cache');

export interface CopilotCli {
  readonly port: number;
  /** `127.0.0.1:PORT`, as `RuntimeConnection.forUri` takes it. */
  readonly address: string;
  readonly home: string;
  readonly token: string;
  readonly sessionStateDir: string;
  /** Milliseconds from spawn to "listening". */
  readonly startupMs: number;
  readonly output: () => string;
  /** Stops the process with `signal` (default SIGTERM) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Stops it and removes its HOME. */
  dispose(): Promise<void>;
}

/** Variables that would make the CLI log in or reach GitHub; the tests run it offline. */
const SCRUBBED = ['GITHUB_TOKEN', 'GH_TOKEN', 'COPILOT_GITHUB_TOKEN', 'GITHUB_ASKPASS', 'COPILOT_CONNECTION_TOKEN'];

export async function startCopilotCli(
  options: { token?: string; home?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CopilotCli> {
  const token = options.token ?? `cli-token-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  const home = options.home ?? mkdtempSync(join(tmpdir(), 'sessionfleet-copilot-home-'));
  mkdirSync(SHARED_CACHE, { recursive: true });
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of SCRUBBED) delete env[name];
  Object.assign(env, {
    HOME: home,
    XDG_CACHE_HOME: SHARED_CACHE,
    COPILOT_CONNECTION_TOKEN: token,
    NO_COLOR: '1',
    ...options.env,
  });
  const started = Date.now();
  // npm's `copilot` is a loader that runs the platform binary as its child: its own process
  // group lets a signal reach both.
  const child = spawn(COPILOT_BIN, ['--headless', '--port', String(port), '--no-auto-update'], {
    cwd: home,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the Copilot CLI did not listen within 60 s:\n${output}`));
    }, 60_000);
    const check = () => {
      if (/listening on port \d+/i.test(output)) {
        clearTimeout(timer);
        child.stdout?.off('data', check);
        resolve();
      }
    };
    child.stdout?.on('data', check);
    child.once('exit', (code, signal) => {
      if (/listening on port \d+/i.test(output)) return;
      clearTimeout(timer);
      reject(new Error(`the Copilot CLI exited (${code ?? signal}) before listening:\n${output}`));
    });
  });
  const startupMs = Date.now() - started;

  const stop = (signal: NodeJS.Signals = 'SIGTERM') => stopProcess(child, signal);
  return {
    port,
    address: `127.0.0.1:${port}`,
    home,
    token,
    sessionStateDir: join(home, '.copilot', 'session-state'),
    startupMs,
    output: () => output,
    stop,
    async dispose() {
      await stop();
      if (!options.home) rmSync(home, { recursive: true, force: true });
    },
  };
}

/** Signals a child (its whole process group if it leads one) and waits for it to exit; SIGKILL after 5 s. */
export function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const signalGroup = (s: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, s);
    } catch {
      // Not a group leader (not spawned detached), or already gone.
      if (child.exitCode === null && child.signalCode === null) child.kill(s);
    }
  };
  if (child.exitCode !== null || child.signalCode !== null) {
    signalGroup('SIGKILL');
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => signalGroup('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      // The platform binary may outlive the loader by a moment.
      signalGroup('SIGKILL');
      resolve();
    });
    signalGroup(signal);
  });
}
