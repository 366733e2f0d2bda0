/**
 * End to end with real processes: the upstream fixture and the agent each in their own process,
 * the client here. Header and cookie affinity, WebSockets, health/readiness/metrics, and a
 * SIGTERM under load.
 */

import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type Spawned, spawnAgent, spawnListening, stopAll } from '../../helpers/http-agent-process.js';
import { until } from './harness.js';

const FIXTURE = 'test/agent/http/fixtures/upstream.ts';
let upstream: Spawned & { url: string };
const client = new Agent({ keepAliveTimeout: 1000 });

beforeAll(async () => {
  upstream = await spawnListening(FIXTURE);
});
afterAll(async () => {
  await client.close();
  await stopAll();
});

async function call(url: string, headers: Record<string, string> = {}, method = 'GET') {
  const response = await request(url, { dispatcher: client, method: method as 'GET', headers });
  const text = await response.body.text();
  return {
    status: response.statusCode,
    headers: response.headers,
    body: text ? (JSON.parse(text) as unknown) : undefined,
  };
}

describe('header affinity', () => {
  it('needs a valid header (400), starts sessions for unseen ids, and answers an expired one with 401', async () => {
    const a = await spawnAgent({
      policy: {
        affinity: { type: 'header', headerName: 'x-custom-affinity-header' },
        sessionLifetimeSeconds: 1,
        sessionIdleTimeoutSeconds: 1,
      },
      upstream: upstream.url,
    });
    expect(await call(`${a.url}/echo`)).toMatchObject({
      status: 400,
      body: {
        error: {
          code: 'SESSION_ID_REQUIRED',
          message: 'the x-custom-affinity-header header is required: send the session id you were given',
          status: 400,
          header: 'x-custom-affinity-header',
        },
      },
    });
    expect(await call(`${a.url}/echo`, { 'x-custom-affinity-header': 'x'.repeat(129) })).toMatchObject({
      status: 400,
      body: {
        error: {
          code: 'INVALID_SESSION_ID',
          message: 'the x-custom-affinity-header header is not a valid session id: use 1-128 visible ASCII characters',
          status: 400,
          header: 'x-custom-affinity-header',
        },
      },
    });
    const ok = await call(`${a.url}/echo`, { 'x-custom-affinity-header': 'user-1' });
    expect(ok.status).toBe(200);
    expect((ok.body as { headers: Record<string, string> }).headers['x-custom-affinity-header']).toBe('user-1');

    let expired: Awaited<ReturnType<typeof call>> | undefined;
    await until(
      async () => {
        expired = await call(`${a.url}/echo`, { 'x-custom-affinity-header': 'user-1' });
        return expired.status !== 200;
      },
      10_000,
      'the session to expire',
    );
    expect(expired?.status).toBe(401);
    expect(expired?.body).toEqual({
      error: {
        code: 'SESSION_EXPIRED',
        message: expect.stringMatching(
          /^Session expired: the session (reached its lifetime|was idle past its timeout): start a new session$/,
        ),
        status: 401,
        reason: expect.stringMatching(/^expired-(lifetime|idle)$/),
      },
    });
    // Every log line about a session carries its id and the request's.
    const created = a.logs().find((l) => l.msg === 'session created');
    expect(created).toMatchObject({ sessionId: 'user-1', reqId: expect.any(String), instance: 'test-agent' });
    await a.stop();
  });
});

describe('cookie affinity', () => {
  it('inserts the cookie, routes with it, and answers it with 401 once its session expired', async () => {
    const a = await spawnAgent({
      policy: { affinity: { type: 'cookie' }, sessionLifetimeSeconds: 1, sessionIdleTimeoutSeconds: 0 },
      upstream: upstream.url,
    });
    const first = await call(`${a.url}/echo`);
    expect(first.status).toBe(200);
    const setCookie = first.headers['set-cookie'] as string[];
    expect(setCookie[1]).toMatch(
      /^x-fc-cookie-session-id=[A-Za-z0-9_-]{24}; Path=\/; Max-Age=1; HttpOnly; SameSite=Lax$/,
    );
    const cookie = setCookie[1]?.split(';')[0] ?? '';
    const second = await call(`${a.url}/echo`, { cookie });
    expect(second.status).toBe(200);
    expect((second.body as { headers: Record<string, string> }).headers.cookie).toBe(cookie);

    let expired: Awaited<ReturnType<typeof call>> | undefined;
    await until(
      async () => {
        expired = await call(`${a.url}/echo`, { cookie });
        return expired.status !== 200;
      },
      10_000,
      'the session to expire',
    );
    expect(expired?.status).toBe(401);
    expect(expired?.headers['set-cookie']).toBe('x-fc-cookie-session-id=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax');
    expect(expired?.body).toEqual({
      error: {
        code: 'INVALID_COOKIE',
        message: 'the session reached its lifetime: retry without the cookie to get a new one',
        status: 401,
        reason: 'expired-lifetime',
      },
    });
    await a.stop();
  });
});

describe('WebSocket', () => {
  it('passes a WebSocket through the agent process under its session', async () => {
    const a = await spawnAgent({
      policy: { affinity: { type: 'header', headerName: 'x-aff' } },
      upstream: upstream.url,
    });
    const ws = new WebSocket(`${a.url.replace('http', 'ws')}/ws`, { headers: { 'x-aff': 'socket-user' } });
    const messages: string[] = [];
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      ws.on('message', (data) => {
        messages.push(data.toString());
        if (messages.length === 1) ws.send('hello');
        else resolve();
      });
      ws.once('error', reject);
    });
    expect(JSON.parse(messages[0] ?? '{}')).toMatchObject({ hello: { 'x-aff': 'socket-user' } });
    expect(messages[1]).toBe('hello');
    ws.close();
    await closed;
    await a.stop();
  });
});

describe('health, readiness and metrics', () => {
  it('stays ready while full (only new sessions are refused), is not ready with the upstream down, and unhealthy past the threshold', async () => {
    const own = await spawnListening(FIXTURE);
    const a = await spawnAgent({
      policy: { affinity: { type: 'header', headerName: 'x-aff' }, sessionsPerInstance: 1 },
      upstream: own.url,
      args: ['--probe-interval-ms', '100', '--unhealthy-after-ms', '1500'],
    });
    const ready = async () => {
      const r = await call(`${a.adminUrl}/readyz/serving`);
      return { status: r.status, reasons: (r.body as { reasons: string[] }).reasons };
    };
    const accepting = async () => {
      const r = await call(`${a.adminUrl}/readyz`);
      return { status: r.status, reasons: (r.body as { reasons: string[] }).reasons };
    };
    expect(await ready()).toEqual({ status: 200, reasons: [] });
    expect(await accepting()).toEqual({ status: 200, reasons: [] });
    expect((await call(`${a.url}/echo`, { 'x-aff': 'only' })).status).toBe(200);
    // Full: the session it holds keeps its Service endpoint; only new sessions are refused.
    expect(await ready()).toEqual({ status: 200, reasons: [] });
    expect(await accepting()).toEqual({ status: 503, reasons: ['no free session slot'] });
    expect((await call(`${a.adminUrl}/readyz`)).body).toMatchObject({
      serving: { inRotation: true, reasons: [] },
    });
    const refused = await call(`${a.url}/echo`, { 'x-aff': 'second' });
    expect(refused.status).toBe(429);
    expect(refused.headers['retry-after']).toBe('60');

    const metrics = await (await fetch(`${a.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/^sessionfleet_active_sessions\{instance_id="test-agent"\} 1$/m);
    expect(metrics).toMatch(/^sessionfleet_sessions_created_total\{front="http",instance_id="test-agent"\} 1$/m);
    expect(metrics).toMatch(
      /^sessionfleet_rejections_total\{code="SESSION_LIMIT_REACHED",instance_id="test-agent"\} 1$/m,
    );
    expect(metrics).toMatch(
      /^sessionfleet_request_duration_seconds_count\{instance_id="test-agent",front="http",outcome="ok"\} 1$/m,
    );
    expect(metrics).toMatch(
      /^sessionfleet_request_duration_seconds_count\{instance_id="test-agent",front="http",outcome="rejected"\} 1$/m,
    );
    expect(metrics).toMatch(/^sessionfleet_inflight_requests\{instance_id="test-agent"\} 0$/m);

    await own.stop();
    await until(async () => (await ready()).reasons.includes('upstream is not answering'), 5000, 'readiness to fail');
    expect((await call(`${a.adminUrl}/healthz`)).status).toBe(200);
    await until(async () => (await call(`${a.adminUrl}/healthz`)).status === 503, 5000, 'liveness to fail');
    expect((await call(`${a.url}/echo`, { 'x-aff': 'only' })).status).toBe(502);
    await a.stop();
  });
});

describe('an upstream that is down at start-up', () => {
  it('is logged at once, and /healthz names no success it never had', async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const a = await spawnAgent({
      policy: { affinity: { type: 'header', headerName: 'x-aff' } },
      upstream: `http://127.0.0.1:${port}`,
    });
    const warned = a.logs().find((l) => l.msg === 'upstream is not answering');
    expect(warned).toMatchObject({ level: 40, upstream: `http://127.0.0.1:${port}/` });
    expect(String(warned?.err)).toContain('ECONNREFUSED');
    const health = await call(`${a.adminUrl}/healthz`);
    expect(health).toMatchObject({ status: 200, body: { status: 'ok', upstreamUp: false, lastUpstreamSuccess: null } });
    expect((await call(`${a.adminUrl}/readyz`)).body).toMatchObject({ reasons: ['upstream is not answering'] });
    await a.stop();
  });
});

describe('SIGTERM', () => {
  it('drains under load: no new sessions (503), every request in flight completes, exit 0', async () => {
    const a = await spawnAgent({
      policy: {
        affinity: { type: 'header', headerName: 'x-aff' },
        sessionsPerInstance: 25,
        drainTimeoutSeconds: 20,
      },
      upstream: upstream.url,
    });
    const load = new Agent({ connections: 60 });
    // 50 requests in flight over 20 sessions.
    const inFlight = Array.from({ length: 50 }, (_, i) =>
      request(`${a.url}/slow?ms=1500`, { dispatcher: load, headers: { 'x-aff': `s${i % 20}` } }).then(
        async (r) => ({ status: r.statusCode, body: await r.body.text() }),
        (error: Error) => ({ status: 0, body: error.message }),
      ),
    );
    await until(
      async () =>
        /^sessionfleet_inflight_requests\{[^}]*\} 50$/m.test(await (await fetch(`${a.adminUrl}/metrics`)).text()),
      10_000,
      '50 requests in flight',
    );
    a.child.kill('SIGTERM');
    await a.waitForLine((l) => l.includes('"msg":"draining"'));

    const readiness = await call(`${a.adminUrl}/readyz`);
    expect(readiness.status).toBe(503);
    expect((readiness.body as { reasons: string[] }).reasons).toContain('draining');
    const newSession = await call(`${a.url}/echo`, { 'x-aff': 'latecomer' });
    expect(newSession.status).toBe(503);
    expect(newSession.headers['retry-after']).toBe('1');
    expect(newSession.body).toEqual({
      error: {
        code: 'DRAINING',
        message:
          'this instance is shutting down and takes no new sessions: retry; another instance will take the session',
        status: 503,
        retryAfterSeconds: 1,
      },
    });

    // A session that exists keeps being served while the instance drains; its client is told to go.
    const existing = await call(`${a.url}/echo`, { 'x-aff': 's3' });
    expect(existing.status).toBe(200);
    expect(existing.headers.connection).toBe('close');

    const results = await Promise.all(inFlight);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(await a.exited).toBe(0);
    expect(a.logs().map((l) => l.msg)).toContain('agent stopped');
    await load.close();
  });
});
