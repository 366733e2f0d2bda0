import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { httpCheck, tcpCheck, UpstreamProbe } from '../../../agent/core/probe.js';

const servers: Array<{ close: () => void }> = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

async function listen(server: Server | ReturnType<typeof createHttpServer>): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('no address');
  return address.port;
}

describe('UpstreamProbe', () => {
  it('a TCP check passes against a listening port and fails once it is closed', async () => {
    const server = createServer((socket) => socket.end());
    const port = await listen(server);
    const probe = new UpstreamProbe({ check: tcpCheck('127.0.0.1', port), intervalMs: 1000, unhealthyAfterMs: 60_000 });
    expect(await probe.checkNow()).toBe(true);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    expect(await probe.checkNow()).toBe(false);
    // Down, but within the threshold: not ready, still alive.
    expect(probe.isUp).toBe(false);
    expect(probe.isHealthy).toBe(true);
  });

  it('an HTTP check fails on a 5xx answer', async () => {
    let status = 200;
    const port = await listen(createHttpServer((_req, res) => res.writeHead(status).end()));
    const probe = new UpstreamProbe({
      check: httpCheck(`http://127.0.0.1:${port}/health`),
      intervalMs: 1000,
      unhealthyAfterMs: 1,
    });
    expect(await probe.checkNow()).toBe(true);
    status = 503;
    expect(await probe.checkNow()).toBe(false);
  });

  it('turns unhealthy once the upstream has not answered past the threshold', async () => {
    const clock = { t: 0 };
    const changes: boolean[] = [];
    let ok = true;
    const probe = new UpstreamProbe({
      check: async () => {
        if (!ok) throw new Error('down');
      },
      intervalMs: 1000,
      unhealthyAfterMs: 5000,
      now: () => clock.t,
      onChange: (up) => changes.push(up),
    });
    await probe.checkNow();
    ok = false;
    clock.t = 4999;
    await probe.checkNow();
    expect(probe.isHealthy).toBe(true);
    clock.t = 5000;
    expect(probe.isHealthy).toBe(false);
    ok = true;
    await probe.checkNow();
    expect(probe.isHealthy).toBe(true);
    expect(changes).toEqual([true, false, true]);
  });

  it('reports the first result whichever way it goes, and no success before the first one', async () => {
    const clock = { t: 1000 };
    const changes: boolean[] = [];
    let ok = false;
    const probe = new UpstreamProbe({
      check: async () => {
        if (!ok) throw new Error('connect ECONNREFUSED');
      },
      intervalMs: 1000,
      unhealthyAfterMs: 5000,
      now: () => clock.t,
      onChange: (up) => changes.push(up),
    });
    // An upstream down at start-up is reported at once (the agent logs it), not only later.
    await probe.checkNow();
    await probe.checkNow();
    expect(changes).toEqual([false]);
    expect(probe.lastSuccessAt).toBeUndefined();
    expect(probe.isHealthy).toBe(true);
    ok = true;
    clock.t = 2000;
    await probe.checkNow();
    expect(changes).toEqual([false, true]);
    expect(probe.lastSuccessAt).toBe(2000);
  });

  it('a check that hangs times out instead of blocking the probe', async () => {
    const server = createServer(() => {});
    const port = await listen(server);
    const probe = new UpstreamProbe({
      check: httpCheck(`http://127.0.0.1:${port}/`),
      intervalMs: 1000,
      unhealthyAfterMs: 60_000,
      timeoutMs: 100,
    });
    expect(await probe.checkNow()).toBe(false);
  });
});
