/**
 * The agent image, built for real without a Docker engine (scripts/build-image.sh: debootstrap +
 * Node from npm + buildah) and run with podman as a fleet runs it (scripts/run-image.sh: read-only
 * root, uid 1000, no capabilities): health, readiness, a request proxied to an upstream on the
 * host, and a SIGTERM drain that lets an in-flight request finish. Skipped, saying why, only when
 * buildah, podman or debootstrap is not installed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/redis-server.js';
import { REPO_ROOT, run } from '../helpers/run.js';

const TOOLS = ['buildah', 'podman', 'debootstrap'];
const missing = TOOLS.filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
if (missing.length > 0) {
  console.warn(
    `agent image test skipped: ${missing.join(', ')} not installed (Debian: apt-get install -y buildah podman debootstrap)`,
  );
}

const IMAGE = 'localhost/sessionfleet-agent:e2e';
const CONTAINER = `sessionfleet-agent-e2e-${process.pid}`;

async function waitFor(url: string, deadlineMs: number): Promise<Response> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await fetch(url);
    } catch (error) {
      if (Date.now() > until) throw error;
      await sleep(250);
    }
  }
}

describe.skipIf(missing.length > 0)('the agent image, built with buildah and run with podman', () => {
  const seen: Array<{ url: string; headers: IncomingHttpHeaders }> = [];
  let upstream: Server;
  let upstreamPort = 0;
  let clientPort = 0;
  let adminPort = 0;
  let digest = '';
  let exited: Promise<number | null>;
  let agentLog = '';

  beforeAll(async () => {
    if (spawnSync('test', ['-f', join(REPO_ROOT, 'dist/agent/cli.js')]).status !== 0) {
      const build = await run('npm', ['run', 'build']);
      expect(build.code, build.stderr).toBe(0);
    }
    const built = await run(join(REPO_ROOT, 'scripts/build-image.sh'), [IMAGE], { timeoutMs: 1_500_000 });
    expect(built.code, built.stderr.slice(-4000)).toBe(0);
    digest = /^digest: (\S+)$/m.exec(built.stdout)?.[1] ?? '';
    console.log(`agent image ${IMAGE} built, digest ${digest}`);

    upstream = createServer((request, response) => {
      seen.push({ url: request.url ?? '', headers: request.headers });
      const delay = request.url?.startsWith('/slow') ? 1500 : 0;
      setTimeout(() => response.end(`upstream answered ${request.url}`), delay);
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    upstreamPort = (upstream.address() as { port: number }).port;
    clientPort = await freePort();
    adminPort = await freePort();

    const dir = mkdtempSync(join(tmpdir(), 'sessionfleet-image-'));
    writeFileSync(
      join(dir, 'policy.json'),
      JSON.stringify({ affinity: { type: 'header', headerName: 'x-session' }, drainTimeoutSeconds: 10 }),
      { mode: 0o644 },
    );
    const agent = spawn(
      join(REPO_ROOT, 'scripts/run-image.sh'),
      [
        IMAGE,
        '--policy',
        '/etc/sessionfleet/policy.json',
        '--upstream',
        `http://127.0.0.1:${upstreamPort}`,
        '--listen',
        `127.0.0.1:${clientPort}`,
        '--admin-listen',
        `127.0.0.1:${adminPort}`,
      ],
      {
        env: {
          ...process.env,
          PODMAN_RUN_OPTS: `--name ${CONTAINER} --rm -v ${join(dir, 'policy.json')}:/etc/sessionfleet/policy.json:ro`,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    agent.stdout.on('data', (d: Buffer) => {
      agentLog += d.toString();
    });
    agent.stderr.on('data', (d: Buffer) => {
      agentLog += d.toString();
    });
    exited = new Promise((resolve) => agent.on('exit', (code) => resolve(code)));
    const health = await waitFor(`http://127.0.0.1:${adminPort}/healthz`, 60_000).catch(() => undefined);
    expect(health?.status, agentLog).toBe(200);
  }, 1_800_000);

  afterAll(async () => {
    await run('podman', ['rm', '--force', '--ignore', CONTAINER]);
    await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
  });

  it('has a pinned digest, a non-root user and only the runtime pieces', async () => {
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const inspect = await run('podman', ['image', 'inspect', IMAGE, '--format', '{{.Digest}} {{.Config.User}}']);
    expect(inspect.stdout.trim()).toBe(`${digest} 1000:1000`);
    const top = await run('podman', ['top', CONTAINER, 'user', 'args']);
    expect(top.stdout).toMatch(/^node\s+node bin\/sessionfleet-agent\.js/m);
    const tryWrite = await run('podman', ['exec', CONTAINER, 'sh', '-c', 'touch /app/x || touch /tmp/x']);
    // The root file system is read-only: only podman's /tmp tmpfs takes writes.
    expect(tryWrite.stderr).toMatch(/Read-only file system/);
    const listing = await run('podman', ['exec', CONTAINER, 'ls', '/app', '/app/node_modules']);
    expect(listing.stdout).toMatch(/fastify/);
    expect(listing.stdout).not.toMatch(/cdktf|typescript|vitest/);
  });

  it('answers /healthz and /readyz on the admin port', async () => {
    expect((await fetch(`http://127.0.0.1:${adminPort}/healthz`)).status).toBe(200);
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready' });
  });

  it('proxies a request to the upstream on the host', async () => {
    const response = await fetch(`http://127.0.0.1:${clientPort}/hello?x=1`, { headers: { 'x-session': 'alpha' } });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('upstream answered /hello?x=1');
    expect(seen.find((r) => r.url === '/hello?x=1')?.headers['x-session']).toBe('alpha');
  });

  it('drains on SIGTERM: not ready, the in-flight request finishes, exit 0', async () => {
    const inFlight = fetch(`http://127.0.0.1:${clientPort}/slow`, { headers: { 'x-session': 'alpha' } });
    while (!seen.some((r) => r.url === '/slow')) await sleep(50);
    const kill = await run('podman', ['kill', '--signal', 'TERM', CONTAINER]);
    expect(kill.code, kill.stderr).toBe(0);
    // A new connection: draining closes the admin port's idle keep-alive sockets, pooled ones included.
    const ready = await undiciFetch(`http://127.0.0.1:${adminPort}/readyz`, { dispatcher: new Agent() });
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ reasons: ['draining'] });
    const response = await inFlight;
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('upstream answered /slow');
    expect(await exited, agentLog).toBe(0);
    expect(agentLog).toMatch(/"msg":"draining"/);
    expect(agentLog).toMatch(/"msg":"agent stopped"/);
  });
});
