/**
 * The proxy path of the HTTP front against a real upstream on loopback sockets, with the agent in
 * this process so its session table and counters can be checked: header rewriting, streaming
 * both ways, WebSockets, cookies, upstream failures, and that nothing is left held afterwards.
 */
import { request as httpRequest } from 'node:http';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { LocalCoordinator } from '../../../agent/fleet/local-coordinator.js';
import { HttpFront } from '../../../agent/http/front.js';
import { startUpstream, type Upstream } from './fixtures/upstream.js';
import { buildTestContext, startTestAgent, type TestAgent, until } from './harness.js';

let upstream: Upstream;
const client = new Agent({ keepAliveTimeout: 1000 });
const agents: TestAgent[] = [];

beforeAll(async () => {
  upstream = await startUpstream();
});
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop();
});
afterAll(async () => {
  await client.close();
  await upstream.close();
});

async function agentWith(policy: Record<string, unknown>, args: string[] = [], logLevel?: string) {
  const a = await startTestAgent(policy, upstream.url, args, logLevel ? { logLevel } : {});
  agents.push(a);
  return a;
}

const headerPolicy = {
  affinity: { type: 'header', headerName: 'x-affinity' },
  sessionsPerInstance: 5,
  concurrencyPerInstance: 10,
};

async function call(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  const response = await request(url, {
    dispatcher: client,
    method: (options.method ?? 'GET') as 'GET',
    headers: options.headers,
    body: options.body,
  });
  const text = await response.body.text();
  return {
    status: response.statusCode,
    headers: response.headers,
    text,
    json: () => JSON.parse(text) as Record<string, unknown>,
  };
}

function rawCall(
  port: number,
  options: { method: string; path: string; headers: Record<string, string>; body?: string },
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; json: () => unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, agent: false, ...options }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, json: () => JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Everything the front holds for requests is back to zero. */
function expectIdle(a: TestAgent) {
  expect(a.front.stats()).toEqual({
    activeRequests: 0,
    openStreams: 0,
    streamPlaces: 0,
    sessionsWithStreams: 0,
    pendingReservations: 0,
    tunnels: 0,
    pendingUpstreamDeletes: 0,
  });
  expect(a.agent.context.load.inFlight).toBe(0);
  for (const session of a.agent.context.sessions.list()) {
    expect({ id: session.id, inFlight: session.inFlight, openStreams: session.openStreams }).toEqual({
      id: session.id,
      inFlight: 0,
      openStreams: 0,
    });
  }
}

describe('Host and Origin (DNS-rebinding protection)', () => {
  it('refuses a Host or a browser Origin a loopback agent does not serve, before anything reaches the upstream', async () => {
    const a = await agentWith(headerPolicy);
    const before = upstream.received.length;
    const host = await rawCall(a.agent.client.port, {
      method: 'POST',
      path: '/echo',
      headers: { 'x-affinity': 'dns-1', host: 'attacker.example:8080', 'content-type': 'application/json' },
      body: '{}',
    });
    expect(host.status).toBe(403);
    expect(host.json()).toEqual({
      error: {
        code: 'HOST_FORBIDDEN',
        status: 403,
        message:
          'the Host header "attacker.example:8080" is not one this agent serves: use a host name this service is published under',
        host: 'attacker.example:8080',
      },
    });
    const origin = await rawCall(a.agent.client.port, {
      method: 'POST',
      path: '/echo',
      headers: { 'x-affinity': 'dns-2', origin: 'http://attacker.example', 'content-type': 'application/json' },
      body: '{}',
    });
    expect(origin.status).toBe(403);
    expect((origin.json() as { error: { code: string } }).error.code).toBe('ORIGIN_FORBIDDEN');
    expect(upstream.received.length).toBe(before);

    // Its own names and origins pass.
    const ok = await rawCall(a.agent.client.port, {
      method: 'POST',
      path: '/echo',
      headers: { 'x-affinity': 'dns-3', origin: 'http://localhost:5173', 'content-type': 'application/json' },
      body: '{}',
    });
    expect(ok.status).toBe(200);
  });
});

describe('forwarding', () => {
  it('addresses the upstream by its own Host and tells it the original host, client, scheme and request id', async () => {
    // The public name the client used; a loopback agent serves only loopback names unless told.
    const a = await agentWith(headerPolicy, ['--allowed-hosts', 'public.example']);
    // node:http, not undici: undici refuses to send hop-by-hop headers at all.
    const response = await rawCall(a.agent.client.port, {
      method: 'POST',
      path: '/echo?x=1',
      headers: {
        'x-affinity': 's1',
        host: 'public.example',
        'x-request-id': 'req-42',
        'content-type': 'application/json',
        connection: 'keep-alive, x-hop',
        'x-hop': 'dropped',
        'keep-alive': 'timeout=5',
      },
      body: '{"hello":"world"}',
    });
    expect(response.status).toBe(200);
    expect(response.headers['x-request-id']).toBe('req-42');
    expect(response.headers['set-cookie']).toEqual(['upstream=1; Path=/']);
    const seen = response.json() as { method: string; url: string; headers: Record<string, string>; bodyBytes: number };
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe('/echo?x=1');
    expect(seen.bodyBytes).toBe(17);
    expect(seen.headers).toMatchObject({
      host: `127.0.0.1:${upstream.port}`,
      'x-forwarded-host': 'public.example',
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-request-id': 'req-42',
      'x-affinity': 's1',
      'content-type': 'application/json',
    });
    expect(seen.headers['x-hop']).toBeUndefined();
    expect(seen.headers['keep-alive']).toBeUndefined();
    expectIdle(a);
  });

  it('gives every request an id when the client sends none (or an unusable one)', async () => {
    const a = await agentWith(headerPolicy);
    const first = await call(`${a.url}/echo`, { headers: { 'x-affinity': 's1' } });
    const second = await call(`${a.url}/echo`, { headers: { 'x-affinity': 's1', 'x-request-id': 'has space' } });
    expect(first.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/);
    expect(second.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/);
    expect(first.headers['x-request-id']).not.toBe(second.headers['x-request-id']);
  });

  it('passes an SSE stream through event by event: each event arrives before the upstream sends the next', async () => {
    const a = await agentWith(headerPolicy);
    const interval = 200;
    const response = await request(`${a.url}/events?count=6&interval=${interval}`, {
      dispatcher: client,
      headers: { 'x-affinity': 's1' },
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/event-stream');
    const arrivals: Array<{ i: number; sentAt: number; at: number }> = [];
    let buffer = '';
    for await (const chunk of response.body) {
      buffer += chunk.toString();
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const data = /data: (.*)/.exec(buffer.slice(0, end))?.[1];
        if (data) arrivals.push({ ...(JSON.parse(data) as { i: number; sentAt: number }), at: Date.now() });
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
      }
    }
    expect(arrivals.map((e) => e.i)).toEqual([0, 1, 2, 3, 4, 5]);
    for (const event of arrivals) expect(event.at - event.sentAt).toBeLessThan(interval);
    expectIdle(a);
  });

  it('with --http-body-gate-bytes 0, streams request and response bodies both ways: each request chunk is answered before the next is sent', async () => {
    // Bodies that wait for the response (duplex streaming) need the gate off (ADR 0023).
    const a = await agentWith(headerPolicy, ['--http-body-gate-bytes', '0']);
    const port = a.agent.client.port;
    const lines = await new Promise<string[]>((resolve, reject) => {
      const req = httpRequest({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/pingpong',
        headers: { 'x-affinity': 's1', 'transfer-encoding': 'chunked' },
      });
      const got: string[] = [];
      let pending = '';
      req.on('response', (res) => {
        res.on('data', (chunk: Buffer) => {
          pending += chunk.toString();
          const parts = pending.split('\n');
          pending = parts.pop() ?? '';
          for (const line of parts) {
            got.push(line);
            // The next chunk goes out only after the upstream answered this one through the agent.
            if (line.startsWith('got 1')) req.write('bb');
            else if (line.startsWith('got 2')) req.end('ccc');
          }
        });
        res.on('end', () => resolve(got));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.write('a');
    });
    expect(lines).toEqual(['got 1: 1', 'got 2: 2', 'got 3: 3', 'done']);
    expectIdle(a);
  });

  it('with the body gate (default), a body waiting for its response is read, never admitted, and answered 408 once idle', async () => {
    const a = await agentWith(headerPolicy, ['--http-body-idle-timeout-ms', '300']);
    const before = upstream.received.length;
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({
        host: '127.0.0.1',
        port: a.agent.client.port,
        method: 'POST',
        path: '/pingpong',
        headers: { 'x-affinity': 's1', 'transfer-encoding': 'chunked' },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => {
          body += chunk.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.write('a');
    });
    expect(answer.status).toBe(408);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'REQUEST_TIMEOUT', timeoutMs: 300 } });
    // Nothing reached the upstream: the request never took a slot.
    expect(upstream.received.length).toBe(before);
    expectIdle(a);
  });
});

describe('holding and releasing', () => {
  it('releases the concurrency slot and the session when the client aborts mid-request', async () => {
    const a = await agentWith(headerPolicy);
    const aborter = new AbortController();
    const pending = request(`${a.url}/slow?ms=5000`, {
      dispatcher: client,
      headers: { 'x-affinity': 's1' },
      signal: aborter.signal,
    }).catch((error: Error) => error);
    await until(() => a.agent.context.load.inFlight === 1, 5000, 'the request in flight');
    expect(a.agent.context.sessions.get('s1')?.inFlight).toBe(1);
    aborter.abort();
    expect(await pending).toBeInstanceOf(Error);
    await until(() => a.front.stats().activeRequests === 0, 5000, 'the slot released');
    expectIdle(a);
  });

  it('keeps a session busy, not idle, during a long poll that outlasts the idle timeout', async () => {
    const a = await agentWith({ ...headerPolicy, sessionLifetimeSeconds: 30, sessionIdleTimeoutSeconds: 1 });
    const response = await call(`${a.url}/slow?ms=1500`, { headers: { 'x-affinity': 'poller' } });
    expect(response.status).toBe(200);
    expect(a.agent.context.sessions.lookup('poller').state).toBe('active');
  });

  it('closes a session’s open streams when the session ends, and frees everything', async () => {
    const a = await agentWith(headerPolicy);
    const response = await request(`${a.url}/hold`, { dispatcher: client, headers: { 'x-affinity': 'streamer' } });
    expect(response.statusCode).toBe(200);
    await until(() => upstream.openStreams() === 1, 5000, 'the upstream stream');
    const session = a.agent.context.sessions.get('streamer');
    expect({ inFlight: session?.inFlight, openStreams: session?.openStreams }).toEqual({ inFlight: 0, openStreams: 1 });
    // An open stream holds no concurrency slot.
    expect(a.agent.context.load.inFlight).toBe(0);
    const ended = response.body.text();
    expect(await a.front.terminate('streamer')).toBe(true);
    expect(await ended).toBe(': open\n\n');
    await until(() => upstream.openStreams() === 0, 5000, 'the upstream stream closed');
    expectIdle(a);
    expect(a.agent.context.sessions.lookup('streamer')).toEqual({ state: 'ended', reason: 'terminated' });
    expect(await a.front.terminate('streamer')).toBe(false);
  });

  it('forgets 10,000 sessions once they are gone: no table entry, remembered id, timer or stream left', async () => {
    const gc = await exposeGc();
    // An upstream that keeps no record of the requests it saw (the shared one remembers them all).
    const quiet = await startUpstream({ record: false });
    const a = await startTestAgent(
      {
        affinity: { type: 'header', headerName: 'x-affinity' },
        sessionsPerInstance: 200,
        evictionPolicy: 'lru',
        sessionLifetimeSeconds: 2,
        sessionIdleTimeoutSeconds: 1,
      },
      quiet.url,
      [],
      // The test keeps every log line it is given; at debug level those would be the growth measured.
      { logLevel: 'warn' },
    );
    agents.push(a);
    const { sessions } = a.agent.context;
    const pool = new Agent({ connections: 16 });
    const wave = async (prefix: string, total: number) => {
      for (let i = 0; i < total; i += 100) {
        const batch = Array.from({ length: 100 }, (_, k) =>
          request(`${a.url}/`, { dispatcher: pool, headers: { 'x-affinity': `${prefix}-${i + k}` } }).then((r) => {
            expect(r.statusCode).toBe(200);
            return r.body.dump();
          }),
        );
        await Promise.all(batch);
      }
    };
    // Warm up (JIT, buffers, pools), then measure around the 10,000.
    await wave('warm', 500);
    await until(() => sessions.size === 0 && sessions.rememberedCount === 0, 10_000, 'the warm-up sessions forgotten');
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

    await wave('s', 10_000);
    await expect(a.agent.context.metrics.sessionsCreated.get()).resolves.toMatchObject({ values: [{ value: 10_500 }] });
    expect(sessions.size).toBe(200);
    await until(
      () => sessions.size === 0 && sessions.rememberedCount === 0,
      10_000,
      'every session expired and forgotten',
    );
    expectIdle(a);
    gc();
    const grown = process.memoryUsage().heapUsed - heapBefore;
    const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await pool.close();
    await quiet.close();
    expect(timersAfter).toBeLessThanOrEqual(timersBefore);
    // 10,000 sessions and their remembered ids weigh several MB; all of it must be gone.
    expect(grown).toBeLessThan(2 * 1024 * 1024);
  });
});

describe('cookie affinity', () => {
  const cookiePolicy = { affinity: { type: 'cookie' }, sessionsPerInstance: 100 };

  it('inserts an HttpOnly, SameSite=Lax, Path=/ cookie with an unguessable id, Secure behind TLS', async () => {
    const a = await agentWith(cookiePolicy);
    const first = await call(`${a.url}/echo`);
    expect(first.status).toBe(200);
    const cookies = first.headers['set-cookie'] as string[];
    expect(cookies[0]).toBe('upstream=1; Path=/');
    expect(cookies[1]).toMatch(
      /^x-fc-cookie-session-id=[A-Za-z0-9_-]{24}; Path=\/; Max-Age=21600; HttpOnly; SameSite=Lax$/,
    );
    const secure = await call(`${a.url}/echo`, { headers: { 'x-forwarded-proto': 'https' } });
    expect((secure.headers['set-cookie'] as string[])[1]).toMatch(/; HttpOnly; SameSite=Lax; Secure$/);

    const id = /=([^;]+);/.exec(cookies[1] ?? '')?.[1] ?? '';
    const again = await call(`${a.url}/echo`, { headers: { cookie: `x-fc-cookie-session-id=${id}` } });
    expect(again.status).toBe(200);
    expect(again.headers['set-cookie']).toBe('upstream=1; Path=/');
    expect(a.agent.context.sessions.get(id)?.createdAt).toBeDefined();

    // 144 random bits each: 50 draws never repeat.
    const ids = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const r = await call(`${a.url}/`);
      ids.add(/x-fc-cookie-session-id=([^;]+)/.exec(String(r.headers['set-cookie']))?.[1] ?? '');
    }
    expect(ids.size).toBe(50);
  });

  it('answers a cookie for no live session with 401, clears it, and the retry without it gets a new session', async () => {
    const a = await agentWith(cookiePolicy);
    const response = await call(`${a.url}/echo`, { headers: { cookie: 'x-fc-cookie-session-id=forged' } });
    expect(response.status).toBe(401);
    expect(response.json()).toEqual({
      error: {
        code: 'INVALID_COOKIE',
        message: 'the cookie names no session on this instance: retry without the cookie to get a new one',
        status: 401,
        reason: 'unknown',
      },
    });
    expect(response.headers['set-cookie']).toBe('x-fc-cookie-session-id=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax');
    expect(upstream.received.some((r) => r.headers.cookie === 'x-fc-cookie-session-id=forged')).toBe(false);
    const retry = await call(`${a.url}/echo`);
    expect(retry.status).toBe(200);
    expect(String(retry.headers['set-cookie'])).toContain('x-fc-cookie-session-id=');
  });
});

/** Opens a WebSocket through the agent; a refused upgrade rejects with its status and body. */
function open(url: string, headers: Record<string, string> = {}) {
  return new Promise<{ ws: WebSocket; hello: Record<string, string>; setCookie: string[] | undefined }>(
    (resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      let setCookie: string[] | undefined;
      ws.once('upgrade', (res) => {
        setCookie = res.headers['set-cookie'];
      });
      ws.once('message', (data) =>
        resolve({ ws, hello: (JSON.parse(data.toString()) as { hello: Record<string, string> }).hello, setCookie }),
      );
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => {
          body += d.toString();
        });
        res.on('end', () =>
          reject(Object.assign(new Error(`status ${res.statusCode}`), { status: res.statusCode, body })),
        );
      });
      ws.once('error', reject);
    },
  );
}

describe('WebSocket pass-through', () => {
  it('joins client and instance under header affinity; the socket is a stream of its session', async () => {
    const a = await agentWith(headerPolicy);
    const wsUrl = `${a.url.replace('http', 'ws')}/ws`;
    const { ws, hello } = await open(wsUrl, { 'x-affinity': 'ws-1' });
    expect(hello).toMatchObject({
      host: `127.0.0.1:${upstream.port}`,
      'x-affinity': 'ws-1',
      'x-forwarded-for': '127.0.0.1',
    });
    const echoed = new Promise<string>((resolve) => ws.once('message', (d) => resolve(d.toString())));
    ws.send('ping through the agent');
    expect(await echoed).toBe('ping through the agent');
    const session = a.agent.context.sessions.get('ws-1');
    expect({ inFlight: session?.inFlight, openStreams: session?.openStreams }).toEqual({ inFlight: 0, openStreams: 1 });
    expect(a.agent.context.load.inFlight).toBe(0);

    // Ending the session closes its socket.
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    await a.front.terminate('ws-1');
    await closed;
    await until(() => a.front.stats().tunnels === 0, 5000, 'the tunnel closed');
    expectIdle(a);
  });

  it('refuses an upgrade without the affinity header with 400 and the catalogue body', async () => {
    const a = await agentWith(headerPolicy);
    const refused = await open(`${a.url.replace('http', 'ws')}/ws`).catch((e: { status: number; body: string }) => e);
    expect(refused).toMatchObject({ status: 400 });
    expect(JSON.parse((refused as { body: string }).body)).toEqual({
      error: {
        code: 'SESSION_ID_REQUIRED',
        message: 'the x-affinity header is required: send the session id you were given',
        status: 400,
        header: 'x-affinity',
      },
    });
    await until(() => a.front.stats().activeRequests === 0, 5000, 'the refused upgrade settled');
    expectIdle(a);
  });

  it('inserts the session cookie in the 101 answer under cookie affinity', async () => {
    const a = await agentWith({ affinity: { type: 'cookie', cookieName: 'sid' } });
    const { ws, setCookie } = await open(`${a.url.replace('http', 'ws')}/ws`);
    expect(setCookie?.[0]).toMatch(/^sid=[A-Za-z0-9_-]{24}; Path=\/; Max-Age=21600; HttpOnly; SameSite=Lax$/);
    ws.close();
    const refused = await open(`${a.url.replace('http', 'ws')}/ws`, { cookie: 'sid=nobody' }).catch(
      (e: { status: number }) => e,
    );
    expect(refused).toMatchObject({ status: 401 });
  });
});

describe('sessionsPerPrincipal without Redis', () => {
  const quotaError = (principal: string, limit: number) => ({
    error: {
      code: 'PRINCIPAL_QUOTA_REACHED',
      message: `principal "${principal}" holds ${limit} sessions, the sessionsPerPrincipal quota (${limit}): end one of your sessions first`,
      status: 429,
      quota: 'sessionsPerPrincipal',
      limit,
      principal,
    },
  });

  /** Nothing held, and no placement left holding a quota place in the agent's coordinator. */
  function expectNothingPlaced(a: TestAgent) {
    expectIdle(a);
    const coordinator = a.agent.context.coordinator as LocalCoordinator;
    expect(coordinator.mode).toBe('local');
    expect(coordinator.pendingPlacements).toBe(0);
  }

  it('header affinity: a principal’s new id beyond the quota gets 429 (its own sessions still pass), upgrades too; an end frees the place', async () => {
    const a = await agentWith({ ...headerPolicy, sessionsPerPrincipal: 1 }, ['--principal-header', 'x-user']);
    const as = (user: string, id: string) => call(`${a.url}/echo`, { headers: { 'x-user': user, 'x-affinity': id } });
    expect((await as('alice', 'alice-1')).status).toBe(200);
    expect((await as('alice', 'alice-1')).status).toBe(200);
    const refused = await as('alice', 'alice-2');
    expect(refused.status).toBe(429);
    expect(refused.json()).toEqual(quotaError('alice', 1));
    const upgrade = await open(`${a.url.replace('http', 'ws')}/ws`, {
      'x-user': 'alice',
      'x-affinity': 'alice-3',
    }).catch((e: { status: number; body: string }) => e);
    expect(upgrade).toMatchObject({ status: 429 });
    expect(JSON.parse((upgrade as { body: string }).body)).toEqual(quotaError('alice', 1));
    expect(upstream.received.some((r) => ['alice-2', 'alice-3'].includes(String(r.headers['x-affinity'])))).toBe(false);

    expect((await as('bob', 'bob-1')).status).toBe(200);
    await a.front.terminate('alice-1');
    expect((await as('alice', 'alice-2')).status).toBe(200);
    expect(a.agent.context.sessions.list().map((s) => [s.id, s.principal])).toEqual([
      ['bob-1', 'bob'],
      ['alice-2', 'alice'],
    ]);
    await until(() => a.front.stats().activeRequests === 0, 5000, 'the refused upgrade settled');
    expectNothingPlaced(a);
  });

  it('cookie affinity: no new cookie session beyond the quota; the refusal sets no cookie', async () => {
    const a = await agentWith({ affinity: { type: 'cookie' }, sessionsPerPrincipal: 2 }, [
      '--principal-header',
      'x-user',
    ]);
    for (let i = 0; i < 2; i++)
      expect((await call(`${a.url}/echo`, { headers: { 'x-user': 'alice' } })).status).toBe(200);
    const refused = await call(`${a.url}/echo`, { headers: { 'x-user': 'alice' } });
    expect(refused.status).toBe(429);
    expect(refused.json()).toEqual(quotaError('alice', 2));
    expect(refused.headers['set-cookie']).toBeUndefined();
    expect((await call(`${a.url}/echo`, { headers: { 'x-user': 'bob' } })).status).toBe(200);
    expect(a.agent.context.sessions.size).toBe(3);
    expectNothingPlaced(a);
  });
});

describe('upstream failures', () => {
  it('answers 502 UPSTREAM_UNAVAILABLE when the instance refuses connections, never a 500', async () => {
    const gone = await startUpstream();
    const deadUrl = gone.url;
    await gone.close();
    const a = await startTestAgent(headerPolicy, deadUrl);
    agents.push(a);
    const response = await call(`${a.url}/echo`, { headers: { 'x-affinity': 's1' } });
    expect(response.status).toBe(502);
    expect(response.headers['retry-after']).toBe('1');
    expect(response.json()).toEqual({
      error: {
        code: 'UPSTREAM_UNAVAILABLE',
        message: 'the instance behind this agent is not answering (ECONNREFUSED): retry shortly',
        status: 502,
        cause: 'ECONNREFUSED',
        retryAfterSeconds: 1,
      },
    });
    expectIdle(a);
  });

  it('answers 504 UPSTREAM_TIMEOUT when the instance does not answer in time', async () => {
    const context = buildTestContext(headerPolicy, upstream.url);
    const front = new HttpFront(context, { upstreamHeadersTimeoutMs: 200 });
    const { port } = await front.listen();
    try {
      const response = await call(`http://127.0.0.1:${port}/slow?ms=3000`, { headers: { 'x-affinity': 's1' } });
      expect(response.status).toBe(504);
      expect(response.json()).toEqual({
        error: {
          code: 'UPSTREAM_TIMEOUT',
          message: 'the instance behind this agent did not answer within 0.2s: retry shortly',
          status: 504,
          cause: 'UND_ERR_HEADERS_TIMEOUT',
          retryAfterSeconds: 1,
        },
      });
      expect(context.load.inFlight).toBe(0);
    } finally {
      await front.close();
      context.sessions.close();
    }
  });
});

async function exposeGc(): Promise<() => void> {
  const { setFlagsFromString } = await import('node:v8');
  const { runInNewContext } = await import('node:vm');
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  return () => {
    for (let i = 0; i < 3; i++) gc();
  };
}
