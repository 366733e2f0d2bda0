/**
 * Collaborative sessions on the HTTP front (SPEC.md §6), one real agent process without Redis
 * (the in-process lock) in front of a real recording upstream: the writes of one session never
 * overlap at the upstream, each carries a fencing token that grows in the order served, a writer
 * that waited past `lockWaitSeconds` gets 409 SESSION_BUSY, reads and other sessions are not
 * held, and a client that goes away gives the lock back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentProcess, spawnAgent, spawnListening, stopAll } from '../../helpers/http-agent-process.js';
import { overlapping, type RecordingUpstream, type Served, startRecordingUpstream } from './collaborative-upstream.js';

const ADMIN_TOKEN = 'admin-token-collaborative-5be1';
const AFFINITY = { type: 'header', headerName: 'x-session' };

let upstream: RecordingUpstream;
/** Waits up to 10 s: every writer gets its turn. */
let patient: AgentProcess;
/** Waits 0.3 s, lock TTL 5 s, principals from `x-user`. */
let hasty: AgentProcess;
/** In front of the demo MCP server: MCP Streamable HTTP, principals from `x-user`, wait 0.3 s. */
let mcp: AgentProcess;

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  const [p, h, m] = await Promise.all([
    spawnAgent({
      policy: { affinity: AFFINITY, collaborative: { enabled: true, lockTtlSeconds: 5, lockWaitSeconds: 10 } },
      upstream: upstream.url,
    }),
    spawnAgent({
      policy: { affinity: AFFINITY, collaborative: { enabled: true, lockTtlSeconds: 5, lockWaitSeconds: 0.3 } },
      upstream: upstream.url,
      args: ['--principal-header', 'x-user'],
    }),
    spawnListening('demo/mcp-server.ts').then((server) =>
      spawnAgent({
        policy: {
          affinity: { type: 'mcp-streamable-http' },
          collaborative: { enabled: true, lockTtlSeconds: 5, lockWaitSeconds: 0.3 },
        },
        upstream: server.url,
        args: ['--principal-header', 'x-user', '--admin-token', ADMIN_TOKEN],
      }),
    ),
  ]);
  patient = p;
  hasty = h;
  mcp = m;
}, 60_000);

afterAll(async () => {
  await stopAll();
  await upstream?.close();
});

function post(agent: AgentProcess, session: string, path = '/write', headers: Record<string, string> = {}) {
  return fetch(`${agent.url}${path}`, {
    method: 'POST',
    headers: { 'x-session': session, 'content-type': 'application/json', ...headers },
    body: '{"write":true}',
  });
}

function ofSession(session: string): Served[] {
  return upstream.served.filter((s) => s.session === session);
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function untilAsync(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function busyBody(session: string, retryAfterSeconds: number) {
  return {
    error: {
      code: 'SESSION_BUSY',
      message: `session "${session}" is busy (another write holds its lock): retry after the current write finishes`,
      status: 409,
      sessionId: session,
      retryAfterSeconds,
    },
  };
}

describe('collaborative sessions on the HTTP front (no Redis)', () => {
  it('serializes 20 concurrent writes of one session, with fencing tokens growing in the order served', async () => {
    const created = await post(patient, 's-serial', '/write?ms=1');
    expect(created.status).toBe(200);
    const responses = await Promise.all(Array.from({ length: 20 }, () => post(patient, 's-serial')));
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
    const answered = (await Promise.all(responses.map((r) => r.json()))) as Array<{ token: number }>;

    const writes = ofSession('s-serial');
    expect(writes).toHaveLength(21);
    expect(overlapping(writes)).toEqual([]);
    const inOrder = [...writes].sort((a, b) => a.start - b.start).map((s) => s.token!);
    for (let i = 1; i < inOrder.length; i++) expect(inOrder[i]).toBeGreaterThan(inOrder[i - 1]!);
    // Each client saw the token its write carried upstream.
    expect(new Set(answered.map((a) => a.token))).toEqual(new Set(inOrder.slice(1)));
  });

  it('holds neither reads nor other sessions while a write holds the lock, and passes no token with reads', async () => {
    const held = post(patient, 's-busy', '/hold');
    await until(() => ofSession('s-busy').length === 1, 'the held write upstream');

    const read = await fetch(`${patient.url}/read`, { headers: { 'x-session': 's-busy' } });
    expect(read.status).toBe(200);
    const other = await post(patient, 's-other', '/write?ms=1');
    expect(other.status).toBe(200);
    expect(ofSession('s-busy')[0]!.end).toBeUndefined();

    const reads = ofSession('s-busy').filter((s) => s.method === 'GET');
    expect(reads).toHaveLength(1);
    expect(reads[0]!.rawToken).toBeUndefined();
    expect(ofSession('s-other')[0]!.token).toBeGreaterThan(ofSession('s-busy')[0]!.token!);

    upstream.releaseHeld();
    expect((await held).status).toBe(200);
  });

  it('replaces a fencing token sent by the client with its own', async () => {
    const response = await post(patient, 's-forged', '/write?ms=1', { 'x-sessionfleet-fencing-token': '99999999' });
    expect(response.status).toBe(200);
    const [write] = ofSession('s-forged');
    expect(write!.rawToken).toMatch(/^\d+$/);
    expect(write!.token).not.toBe(99_999_999);
  });

  it('gives the lock back when the client of the holder, or of a waiter, goes away', async () => {
    const holder = new AbortController();
    const held = fetch(`${patient.url}/hold`, {
      method: 'POST',
      headers: { 'x-session': 's-gone' },
      body: '{}',
      signal: holder.signal,
    }).catch(() => 'aborted');
    // A second holder-to-be whose client leaves while it waits.
    const waiterController = new AbortController();
    await until(() => ofSession('s-gone').length === 1, 'the held write upstream');
    const waiter = fetch(`${patient.url}/write`, {
      method: 'POST',
      headers: { 'x-session': 's-gone' },
      body: '{}',
      signal: waiterController.signal,
    }).catch(() => 'aborted');
    const next = post(patient, 's-gone', '/write?ms=1');
    await new Promise((resolve) => setTimeout(resolve, 100));
    waiterController.abort();
    expect(await waiter).toBe('aborted');
    holder.abort();
    upstream.releaseHeld();
    await held;
    expect((await next).status).toBe(200);
    // The waiter that left never reached the upstream.
    expect(ofSession('s-gone').map((s) => s.path)).toEqual(['/hold', '/write']);
  });

  it('answers 409 SESSION_BUSY with Retry-After and the catalogue body past lockWaitSeconds', async () => {
    const headers = { 'x-user': 'alice' };
    expect((await post(hasty, 's-hasty', '/write?ms=1', headers)).status).toBe(200);
    const held = post(hasty, 's-hasty', '/hold', headers);
    await until(() => ofSession('s-hasty').length === 2, 'the held write upstream');

    const refused = await post(hasty, 's-hasty', '/write', headers);
    expect(refused.status).toBe(409);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(await refused.json()).toEqual(busyBody('s-hasty', 5));

    upstream.releaseHeld();
    expect((await held).status).toBe(200);
    expect((await post(hasty, 's-hasty', '/write?ms=1', headers)).status).toBe(200);
    expect(ofSession('s-hasty').map((s) => s.path)).toEqual(['/write', '/hold', '/write']);
  });

  it('with a short wait some of 10 concurrent writers are refused, and the served ones never overlap', async () => {
    const headers = { 'x-user': 'alice' };
    expect((await post(hasty, 's-crowd', '/write?ms=1', headers)).status).toBe(200);
    const responses = await Promise.all(Array.from({ length: 10 }, () => post(hasty, 's-crowd', '/write', headers)));
    const statuses = responses.map((r) => r.status);
    expect(statuses).toContain(200);
    expect(statuses).toContain(409);
    expect(statuses.filter((s) => s !== 200 && s !== 409)).toEqual([]);
    for (const response of responses.filter((r) => r.status === 409)) {
      expect(response.headers.get('retry-after')).toBe('5');
      expect(await response.json()).toEqual(busyBody('s-crowd', 5));
    }
    const writes = ofSession('s-crowd');
    expect(writes).toHaveLength(1 + statuses.filter((s) => s === 200).length);
    expect(overlapping(writes)).toEqual([]);
  });

  it('lets any authenticated principal write to a collaborative session, still under its lock', async () => {
    expect((await post(hasty, 's-shared', '/write?ms=1', { 'x-user': 'alice' })).status).toBe(200);
    const [byBob, byCarol] = await Promise.all([
      post(hasty, 's-shared', '/write?ms=50', { 'x-user': 'bob' }),
      post(hasty, 's-shared', '/write?ms=50', { 'x-user': 'carol' }),
    ]);
    expect([byBob.status, byCarol.status]).toEqual([200, 200]);
    expect(overlapping(ofSession('s-shared'))).toEqual([]);
    const anonymous = await post(hasty, 's-shared', '/write?ms=1');
    expect(anonymous.status).toBe(401);
  });

  it('MCP: other principals may call the session, only its creator may DELETE it; a busy write gets a JSON-RPC 409', async () => {
    const rpc = (user: string, body: unknown, session?: string, method = 'POST') =>
      fetch(`${mcp.url}/mcp`, {
        method,
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-06-18',
          'x-user': user,
          ...(session ? { 'mcp-session-id': session } : {}),
        },
        ...(method === 'POST' ? { body: JSON.stringify(body) } : {}),
      });
    const initialize = await rpc('alice', {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    });
    expect(initialize.status).toBe(200);
    const session = initialize.headers.get('mcp-session-id')!;
    await initialize.text();
    expect((await rpc('alice', { jsonrpc: '2.0', method: 'notifications/initialized' }, session)).status).toBe(202);

    // Bob joins with a long call; Carol's call waits 0.3 s for the lock, then is refused.
    const long = rpc(
      'bob',
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'sleep', arguments: { ms: 1500 } } },
      session,
    );
    // Admitted means holding the lock here: the in-process lock grants a free lock at once.
    await untilAsync(async () => {
      const response = await fetch(`${mcp.adminUrl}/admin/sessions`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      const { sessions } = (await response.json()) as { sessions: Array<{ id: string; inFlight: number }> };
      return sessions.find((s) => s.id === session)?.inFlight === 1;
    }, 'the long call in flight');
    const refused = await rpc('carol', { jsonrpc: '2.0', id: 3, method: 'tools/list' }, session);
    expect(refused.status).toBe(409);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(await refused.json()).toEqual({
      jsonrpc: '2.0',
      error: {
        code: -31015,
        message: `session "${session}" is busy (another write holds its lock): retry after the current write finishes`,
        data: { code: 'SESSION_BUSY', status: 409, sessionId: session, retryAfterSeconds: 5 },
      },
      id: null,
    });
    const answered = await long;
    expect(answered.status).toBe(200);
    expect(await answered.text()).toContain('slept 1500 ms');

    // Only Alice may end it.
    const bobDeletes = await rpc('bob', undefined, session, 'DELETE');
    expect(bobDeletes.status).toBe(403);
    expect(await bobDeletes.json()).toEqual({
      jsonrpc: '2.0',
      error: {
        code: -31013,
        message: 'this session belongs to another principal: use a session you created',
        data: { code: 'SESSION_FORBIDDEN', status: 403 },
      },
      id: null,
    });
    const carol = await rpc('carol', { jsonrpc: '2.0', id: 4, method: 'tools/list' }, session);
    expect(carol.status).toBe(200);
    await carol.text();
    const aliceDeletes = await rpc('alice', undefined, session, 'DELETE');
    expect(aliceDeletes.status).toBe(200);
    await aliceDeletes.text();
    expect((await rpc('carol', { jsonrpc: '2.0', id: 5, method: 'tools/list' }, session)).status).toBe(404);
  });
});
