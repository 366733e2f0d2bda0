/**
 * Real processes for end-to-end tests: the agent from source (`node --import tsx agent/cli.ts`)
 * with its ports read from its `"agent listening"` log line (at a quieter `--log-level`: ports
 * named by the helper, readiness from the admin port), and any script that prints one JSON
 * line `{"listening": {"port"}}` (the demo MCP server, the upstream fixture). Every process
 * started here is tracked; `stopAll()` in `afterAll` ends the ones still running.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { AGENT_PATHS, envName } from '../../policy/agent-interface.js';
import { REPO_ROOT } from './run.js';

export interface Spawned {
  readonly child: ChildProcess;
  /** stdout lines so far (the agent's JSON log). */
  readonly lines: string[];
  readonly stderr: () => string;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** Waits for a stdout line matching `predicate` (already seen ones count). */
  waitForLine(predicate: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | string>;
}

const running = new Set<ChildProcess>();

/** Ends every process started by this module that is still running. */
export async function stopAll(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
  running.clear();
}

/** `node --import tsx <args>`; with `tsx: false`, plain `node <args>` (compiled JavaScript). */
export function spawnNode(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; tsx?: boolean; nodeArgs?: readonly string[] } = {},
): Spawned {
  const node = [...(options.nodeArgs ?? []), ...(options.tsx === false ? [] : ['--import', 'tsx'])];
  const child = spawn(process.execPath, [...node, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const lines: string[] = [];
  const waiters = new Set<{ predicate: (line: string) => boolean; resolve: (line: string) => void }>();
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const waiter of [...waiters]) {
      if (waiter.predicate(line)) {
        waiters.delete(waiter);
        waiter.resolve(line);
      }
    }
  });
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
  });
  const spawned: Spawned = {
    child,
    lines,
    stderr: () => stderr,
    exited,
    waitForLine(predicate, timeoutMs = 20_000) {
      const seen = lines.find(predicate);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = {
          predicate,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(
            new Error(`no matching line within ${timeoutMs} ms; stderr:\n${stderr}\nstdout:\n${lines.join('\n')}`),
          );
        }, timeoutMs);
        waiters.add(waiter);
        void exited.then((code) => {
          if (!waiters.has(waiter)) return;
          waiters.delete(waiter);
          clearTimeout(timer);
          reject(new Error(`the process exited (${code}) first; stderr:\n${stderr}\nstdout:\n${lines.join('\n')}`));
        });
      });
    },
    async stop(signal = 'SIGTERM', timeoutMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  return spawned;
}

/** A script that prints `{"listening": {"port": N}}`; resolves with its URL. */
export async function spawnListening(
  script: string,
  args: readonly string[] = [],
): Promise<Spawned & { url: string; port: number }> {
  const spawned = spawnNode([script, ...args]);
  const line = await spawned.waitForLine((l) => l.includes('"listening"'));
  const { port } = (JSON.parse(line) as { listening: { port: number } }).listening;
  return Object.assign(spawned, { url: `http://127.0.0.1:${port}`, port });
}

export interface AgentProcess extends Spawned {
  /** Where clients connect: `http://127.0.0.1:PORT`. */
  readonly url: string;
  readonly adminUrl: string;
  /** Parsed JSON log lines so far. */
  logs(): Array<Record<string, unknown>>;
}

/**
 * Starts `sessionfleet-agent` with `policy` (written to a temporary file) in front of `upstream`:
 * from source by default, or the compiled package bin (`dist/`, after `npm run build`).
 */
export async function spawnAgent(options: {
  policy: Record<string, unknown>;
  upstream: string;
  args?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** V8/Node flags before the script (those NODE_OPTIONS refuses, such as --trace-gc). */
  nodeArgs?: readonly string[];
  compiled?: boolean;
}): Promise<AgentProcess> {
  // The ports come from the "agent listening" line, an info-level log: with a quieter
  // `--log-level` the helper names the ports itself (unless the test does) and polls instead.
  const args = options.args ?? [];
  const explicit = logsListening(args, { ...process.env, ...options.env })
    ? undefined
    : { client: await portOf(args, 'listen'), admin: await portOf(args, 'admin-listen') };
  const dir = mkdtempSync(join(tmpdir(), 'sessionfleet-agent-'));
  const policyFile = join(dir, 'policy.json');
  writeFileSync(policyFile, JSON.stringify(options.policy));
  const spawned = spawnNode(
    [
      options.compiled ? 'bin/sessionfleet-agent.js' : 'agent/cli.ts',
      '--policy',
      policyFile,
      '--upstream',
      options.upstream,
      '--listen',
      `127.0.0.1:${explicit?.client ?? 0}`,
      '--admin-listen',
      `127.0.0.1:${explicit?.admin ?? 0}`,
      '--instance-id',
      'test-agent',
      ...args,
    ],
    { env: options.env, tsx: !options.compiled, nodeArgs: options.nodeArgs },
  );
  void spawned.exited.then(() => rmSync(dir, { recursive: true, force: true }));
  let client: { port: number };
  let admin: { port: number };
  if (explicit) {
    // Above info the agent prints nothing once it listens: its admin port answering is the sign
    // (the client port listens before it). The first upstream probe and the fleet registration
    // may still be under way then; a test that needs them waits for them itself.
    await untilAnswers(spawned, `http://127.0.0.1:${explicit.admin}${AGENT_PATHS.live}`);
    ({ client, admin } = { client: { port: explicit.client }, admin: { port: explicit.admin } });
  } else {
    const line = await spawned.waitForLine((l) => l.includes('"agent listening"'));
    ({ client, admin } = JSON.parse(line) as { client: { port: number }; admin: { port: number } });
  }
  return Object.assign(spawned, {
    url: `http://127.0.0.1:${client.port}`,
    adminUrl: `http://127.0.0.1:${admin.port}`,
    logs: () =>
      spawned.lines.flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
  });
}

/** The value of `--name` in `args` (the last one: the agent's parser keeps it), in either form. */
function flagValue(args: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) value = args[i + 1];
    else if (args[i]!.startsWith(`--${name}=`)) value = args[i]!.slice(name.length + 3);
  }
  return value;
}

/** Whether the agent started with `args` and `env` logs at info (or below): the "agent listening" line. */
function logsListening(args: readonly string[], env: NodeJS.ProcessEnv): boolean {
  const level = flagValue(args, 'log-level') ?? (env[envName('log-level')] || 'info');
  return ['info', 'debug', 'trace'].includes(level);
}

/** The port a test named with `--name host:port`, else a free loopback port. */
async function portOf(args: readonly string[], name: string): Promise<number> {
  const given = flagValue(args, name)?.match(/:(\d+)$/)?.[1];
  if (given !== undefined && given !== '0') return Number(given);
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Polls `url` until it answers at all (any status), the process exits, or `timeoutMs` passes. */
async function untilAnswers(spawned: Spawned, url: string, timeoutMs = 30_000): Promise<void> {
  let exited: number | string | undefined;
  void spawned.exited.then((code) => {
    exited = code;
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited !== undefined) throw new Error(`the agent exited (${exited}) first; stderr:\n${spawned.stderr()}`);
    try {
      await fetch(url, { signal: AbortSignal.timeout(2000) });
      return;
    } catch {
      if (Date.now() > deadline)
        throw new Error(`${url} did not answer within ${timeoutMs} ms; stderr:\n${spawned.stderr()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
