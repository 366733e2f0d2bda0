/**
 * The drain wrapper the Azure fleets put around the app and the agent (docs/adr/0101), run for real:
 * the synthesized `sh` command lines of a Container Apps fleet start the real agent (from source,
 * through a `sessionfleet-agent` shim on PATH) and a real HTTP app, with the run directory the two
 * containers would share. Only what cannot exist here is replaced: the ports 8080/9090 (loopback
 * port 0) and the policy's mount path (a temporary file with the synthesized policy).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { Testing } from 'cdktf';
import { afterEach, describe, expect, it } from 'vitest';
import { AzureContainerAppsSessionFleet } from '../../constructs/azure-container-apps-session-fleet.js';
import type { PolicyInput } from '../../constructs/index.js';
import { REPO_ROOT } from '../helpers/run.js';

const APP_SCRIPT = `
import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';
const log = (line) => appendFileSync(process.env.APP_LOG, line + ' ' + Date.now() + '\\n');
const server = createServer((req, res) => {
  const delay = Number(new URL(req.url, 'http://app').searchParams.get('delay') ?? 0);
  log('app-request');
  setTimeout(() => res.end('answered by ' + process.pid), delay);
});
server.listen(Number(process.env.APP_PORT), '127.0.0.1', () => log('app-listening'));
process.on('SIGTERM', () => { log('app-term'); process.exit(0); });
`;

interface Proc {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
  exitedAt?: number;
  waitFor(predicate: (line: string) => boolean, timeoutMs?: number): Promise<string>;
}

const started: ChildProcess[] = [];
let dir: string;

afterEach(() => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  started.length = 0;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function run(command: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(command[0]!, command.slice(1), { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  const lines: string[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  createInterface({ input: child.stdout! }).on('line', (line) => lines.push(line));
  const proc: Proc = {
    child,
    lines,
    exited: new Promise((resolve) =>
      child.once('exit', (code) => {
        proc.exitedAt = Date.now();
        resolve(code);
      }),
    ),
    async waitFor(predicate, timeoutMs = 90_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = lines.find(predicate);
        if (line !== undefined) return line;
        if (Date.now() > deadline || child.exitCode !== null)
          throw new Error(`no matching line; stderr:\n${stderr}\nstdout:\n${lines.join('\n')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
  return proc;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitUntil(check: () => boolean, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Synthesizes a fleet around the app script and starts both wrapped containers as processes. */
async function startReplica(policy: PolicyInput, cpu = 1) {
  dir = mkdtempSync(join(tmpdir(), 'sessionfleet-fate-'));
  const appFile = join(dir, 'app.mjs');
  writeFileSync(appFile, APP_SCRIPT);
  const appPort = await freePort();
  let fleet: AzureContainerAppsSessionFleet | undefined;
  const stack = JSON.parse(
    Testing.synthScope((scope) => {
      fleet = new AzureContainerAppsSessionFleet(scope, 'Fleet', {
        policy,
        app: { image: 'example.azurecr.io/app:1', port: appPort, command: ['node', appFile], cpu },
        location: 'westeurope',
      });
    }),
  );
  type Container = { name: string; command: string[] };
  const containerApp = Object.values(stack.resource.azurerm_container_app)[0] as {
    template: { container: Container[] };
  };
  const containers = containerApp.template.container;
  const appCommand = containers.find((c) => c.name === 'app')!.command;
  const agentCommand = containers.find((c) => c.name === 'sessionfleet-agent')!.command;

  const policyFile = join(dir, 'policy.json');
  writeFileSync(policyFile, fleet!.policyFile);
  const bin = join(dir, 'bin');
  const shim = join(bin, 'sessionfleet-agent');
  rmSync(bin, { recursive: true, force: true });
  mkdirSync(bin);
  writeFileSync(shim, `#!/bin/sh\nexec "${process.execPath}" --import tsx "${REPO_ROOT}/agent/cli.ts" "$@"\n`);
  chmodSync(shim, 0o755);
  const agentArgv = agentCommand.map((arg, i) => {
    const flag = agentCommand[i - 1];
    if (flag === '--policy') return policyFile;
    if (flag === '--listen' || flag === '--admin-listen') return '127.0.0.1:0';
    return arg;
  });

  const runDir = join(dir, 'run');
  mkdirSync(runDir);
  const env = {
    ...process.env,
    PATH: `${bin}:${dirname(process.execPath)}:${process.env.PATH}`,
    SESSIONFLEET_RUN_DIR: runDir,
    APP_LOG: join(dir, 'app.log'),
    APP_PORT: String(appPort),
    SESSIONFLEET_INSTANCE_ID: 'replica-0',
    // The container app secret `admin-token` would set it; the test ends a session through the admin API.
    SESSIONFLEET_ADMIN_TOKEN: 'test-admin-token',
  };
  const appLog = () => (existsSync(env.APP_LOG) ? readFileSync(env.APP_LOG, 'utf8') : '');
  const app = run(appCommand, env);
  await waitUntil(() => appLog().includes('app-listening'));
  const agent = run(agentArgv, env);
  const line = await agent.waitFor((l) => l.includes('"agent listening"'));
  const { client, admin } = JSON.parse(line) as { client: { port: number }; admin: { port: number } };
  return {
    app,
    agent,
    appLog,
    marker: join(runDir, 'agent-stopped'),
    url: `http://127.0.0.1:${client.port}`,
    adminUrl: `http://127.0.0.1:${admin.port}`,
  };
}

function appTermAt(log: string): number | undefined {
  const match = /app-term (\d+)/.exec(log);
  return match ? Number(match[1]) : undefined;
}

describe('the Azure drain wrapper, run for real', () => {
  it('holds the SIGTERM both containers get together until the agent has drained into a live app', async () => {
    const replica = await startReplica({ affinity: { type: 'none' }, drainTimeoutSeconds: 10 });
    const slow = fetch(`${replica.url}/work?delay=1500`);
    // Signal only once the request is in the app: it must be drained, not refused.
    await waitUntil(() => replica.appLog().includes('app-request'));
    // What Container Apps and Container Instances do: both containers are signalled at once.
    replica.app.child.kill('SIGTERM');
    replica.agent.child.kill('SIGTERM');
    const response = await slow;
    expect(response.status).toBe(200);
    expect(await response.text()).toMatch(/^answered by \d+$/);
    expect(await replica.agent.exited).toBe(0);
    expect(await replica.app.exited).toBe(0);
    const markerAt = statSync(replica.marker).mtimeMs;
    const termAt = appTermAt(replica.appLog());
    expect(termAt).toBeDefined();
    // The app heard of the stop only after the agent had finished (the marker is written on its exit).
    expect(termAt!).toBeGreaterThanOrEqual(Math.floor(markerAt));
  }, 180_000);

  it('stops the app when the agent recycles after its session, so the platform restarts both', async () => {
    const replica = await startReplica(
      {
        isolation: 'session',
        affinity: { type: 'header', headerName: 'x-session' },
        recycleAfterSession: true,
        maxInstances: 2,
      },
      2,
    );
    const first = await fetch(`${replica.url}/work`, { headers: { 'x-session': 's1' } });
    expect(first.status).toBe(200);
    await first.text();
    const ended = await fetch(`${replica.adminUrl}/admin/fleet/sessions/s1`, {
      method: 'DELETE',
      headers: { authorization: 'Bearer test-admin-token' },
    });
    expect(ended.status).toBe(200);
    // Nobody signals anything: the agent recycles, and the app follows it.
    expect(await replica.agent.exited).toBe(0);
    expect(await replica.app.exited).toBe(0);
    expect(existsSync(replica.marker)).toBe(true);
    expect(appTermAt(replica.appLog())).toBeDefined();
  }, 180_000);
});
