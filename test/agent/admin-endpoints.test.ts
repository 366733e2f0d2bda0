/**
 * The admin port's separate, truthful endpoints (issue 16, item 6), against an upstream that never
 * starts (nothing listens on its port): `/startupz` never passes, so a startup probe spends its
 * whole budget; `/healthz` fails once the grace period is over; `/livez`, the agent's own
 * liveness, keeps answering, so the agent is not restarted with the app.
 */
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAgent, type TestAgent, until } from './http/harness.js';

async function freePort(): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function status(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('an upstream that never starts', () => {
  let agent: TestAgent;
  let upstreamPort: number;

  beforeAll(async () => {
    upstreamPort = await freePort();
    agent = await startTestAgent(
      { affinity: { type: 'header', headerName: 'x-session' } },
      `http://127.0.0.1:${upstreamPort}`,
      ['--probe-interval-ms', '100', '--unhealthy-after-ms', '1500'],
    );
  });
  afterAll(async () => agent?.stop());

  it('never passes /startupz, from the first probe on (no grace period)', async () => {
    expect(await status(`${agent.adminUrl}/startupz`)).toEqual({
      status: 503,
      body: { status: 'starting', lastUpstreamSuccess: null },
    });
  });

  it('fails /healthz after the grace period, while /livez keeps answering', async () => {
    await until(async () => (await status(`${agent.adminUrl}/healthz`)).status === 503, 5000, '/healthz to fail');
    expect(await status(`${agent.adminUrl}/livez`)).toEqual({ status: 200, body: { status: 'ok' } });
    expect((await status(`${agent.adminUrl}/startupz`)).status).toBe(503);
  });

  it('passes /startupz once the app answers, and fails it again when the app goes away', async () => {
    const app: Server = createServer((socket) => socket.end());
    await new Promise<void>((resolve) => app.listen(upstreamPort, '127.0.0.1', resolve));
    try {
      await until(async () => (await status(`${agent.adminUrl}/startupz`)).status === 200, 5000, '/startupz to pass');
      expect((await status(`${agent.adminUrl}/startupz`)).body.status).toBe('started');
      expect((await status(`${agent.adminUrl}/healthz`)).status).toBe(200);
    } finally {
      await new Promise((resolve) => app.close(resolve));
    }
    await until(async () => (await status(`${agent.adminUrl}/startupz`)).status === 503, 5000, '/startupz to fail');
  });
});
