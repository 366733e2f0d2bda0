/**
 * Slow request bodies against the body rule (issue 14 §3, ADR 0023), with real processes: the
 * upstream fixture and the agent each in their own process, raw TCP clients here so that a body
 * can trickle. A slot stands for work at the upstream: a body takes it only once it is in (up to
 * `--http-body-gate-bytes`), and a body that stalls or trickles is answered 408.
 *
 * No timed assertions: what is asserted is an order (the witness is served while the tricklers
 * are still open and unanswered); waits are bounded generously only so a regression fails.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Spawned, spawnAgent, spawnListening, stopAll } from '../../helpers/http-agent-process.js';
import { connectionsRefused, openRaw, parseRawResponse, type RawConnection } from '../../helpers/raw-http.js';

const FIXTURE = 'test/agent/http/fixtures/upstream.ts';
const POLICY = { affinity: { type: 'none' }, concurrencyPerInstance: 2, sessionsPerInstance: 2 };

let upstream: Spawned & { url: string };
const sockets: Socket[] = [];
const timers: NodeJS.Timeout[] = [];

beforeAll(async () => {
  upstream = await spawnListening(FIXTURE);
});
afterAll(async () => {
  for (const timer of timers) clearInterval(timer);
  for (const socket of sockets) socket.destroy();
  await stopAll();
});

type AgentProcess = Awaited<ReturnType<typeof spawnAgent>>;

function agentWith(args: string[], policy: Record<string, unknown> = POLICY): Promise<AgentProcess> {
  return spawnAgent({ policy, upstream: upstream.url, args });
}

type Raw = RawConnection;
const open = (agent: AgentProcess): Promise<Raw> => openRaw(Number(new URL(agent.url).port), sockets);
const parse = parseRawResponse;
const refused = (agent: AgentProcess, reason: string): Promise<number> => connectionsRefused(agent.adminUrl, reason);

/** Opens `count` requests declaring `length` bytes, sends `first` bytes, then one byte a second. */
async function tricklers(
  agent: AgentProcess,
  count: number,
  options: { length: number; first: number; headers?: string },
): Promise<Raw[]> {
  const raws = await Promise.all(Array.from({ length: count }, () => open(agent)));
  for (const raw of raws) {
    raw.socket.write(
      `POST /echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: ${options.length}\r\n${options.headers ?? ''}\r\n`,
    );
    raw.socket.write('x'.repeat(options.first));
  }
  const drip = setInterval(() => {
    for (const raw of raws) if (!raw.socket.destroyed) raw.socket.write('x');
  }, 1000);
  timers.push(drip);
  return raws;
}

/** Requests holding a concurrency slot now. */
async function inFlight(agent: AgentProcess): Promise<number> {
  const text = await (await fetch(`${agent.adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => /^sessionfleet_inflight_requests[ {]/.test(l));
  return Number(line?.split(' ').pop());
}

async function post(agent: AgentProcess, path: string, body: string | Buffer | Readable, headers = {}) {
  const response = await request(`${agent.url}${path}`, { method: 'POST', body, headers });
  return { status: response.statusCode, json: (await response.body.json()) as Record<string, unknown> };
}

function expectSlowBodyAnswer(raw: string, idleMs: number): void {
  expect(parse(raw)).toMatchObject({
    status: 408,
    headers: { 'content-type': 'application/json; charset=utf-8', connection: 'close' },
    body: { error: { code: 'REQUEST_TIMEOUT', status: 408, timeoutMs: idleMs, minBytesPerSecond: 1024 } },
  });
}

describe('HTTP front: slow bodies hold no concurrency slot', () => {
  it('10 bodies at 1 byte/s against 2 slots: a normal client is served while they trickle; they end 408, counted and logged once', async () => {
    const agent = await agentWith(['--http-body-idle-timeout-ms', '3000']);
    const slow = await tricklers(agent, 10, { length: 100, first: 1 });
    const witness = await post(agent, '/echo', 'hello');
    // The order that matters: served while every trickler is still open and unanswered.
    expect(witness.status).toBe(200);
    expect(witness.json).toMatchObject({ bodyBytes: 5 });
    for (const raw of slow) {
      expect(raw.isClosed).toBe(false);
      expect(raw.received()).toBe('');
    }
    const answers = await Promise.all(slow.map((raw) => raw.closedWithin(3000 * 3 + 10_000, 'a trickler')));
    for (const answer of answers) expectSlowBodyAnswer(answer, 3000);
    expect(await refused(agent, 'body-too-slow')).toBe(10);
    expect(agent.logs().filter((l) => l.refusal === 'body-too-slow').length).toBe(1);
    await agent.stop();
  });

  it("tricklers do not consume their principal's request budget", async () => {
    const agent = await agentWith(['--principal-header', 'x-user', '--http-body-idle-timeout-ms', '3000'], {
      ...POLICY,
      limits: { requestsPerPrincipal: 1 },
    });
    const slow = await tricklers(agent, 3, { length: 100, first: 1, headers: 'x-user: alice\r\n' });
    const own = await post(agent, '/echo', 'mine', { 'x-user': 'alice' });
    expect(own.status).toBe(200);
    for (const raw of slow) expect(raw.isClosed).toBe(false);
    for (const answer of await Promise.all(slow.map((raw) => raw.closedWithin(20_000, 'a trickler')))) {
      expectSlowBodyAnswer(answer, 3000);
    }
    await agent.stop();
  });
});

describe('HTTP front: bodies beyond the gate', () => {
  it('a large body at normal speed reaches the upstream intact, declared or chunked', async () => {
    const agent = await agentWith([]);
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const sha256 = createHash('sha256').update(body).digest('hex');
    const declared = await post(agent, '/digest', body);
    expect(declared).toEqual({ status: 200, json: { bytes: body.length, sha256 } });
    const chunks = Array.from({ length: 64 }, (_, i) => body.subarray(i * 49_153, (i + 1) * 49_153));
    chunks.push(body.subarray(64 * 49_153));
    const chunked = await post(agent, '/digest', Readable.from(chunks));
    expect(chunked).toEqual({ status: 200, json: { bytes: body.length, sha256 } });
    // A chunked body within the gate goes upstream as bytes (with a Content-Length of its own).
    const small = body.subarray(0, 300);
    const smallSha = createHash('sha256').update(small).digest('hex');
    const parts = [small.subarray(0, 100), small.subarray(100, 200), small.subarray(200)];
    expect(await post(agent, '/digest', Readable.from(parts))).toEqual({
      status: 200,
      json: { bytes: 300, sha256: smallSha },
    });
    await agent.stop();
  });

  it('a body exactly at the bound is read before admission; one byte over is admitted at the bound', async () => {
    const agent = await agentWith(['--http-body-gate-bytes', '1024', '--http-body-idle-timeout-ms', '2000']);
    for (const size of [1024, 1025]) {
      const body = randomBytes(size);
      const sha256 = createHash('sha256').update(body).digest('hex');
      expect(await post(agent, '/digest', body)).toEqual({ status: 200, json: { bytes: size, sha256 } });
    }
    // Both slots' worth of bodies stalled at exactly the bound: still not admitted.
    const atBound = await tricklers(agent, 2, { length: 2000, first: 1024 });
    clearInterval(timers.pop());
    expect((await post(agent, '/echo', 'hello')).status).toBe(200);
    for (const raw of atBound) expect(raw.isClosed).toBe(false);
    expect(await inFlight(agent)).toBe(0);
    // One byte over: admitted, each takes a slot, until the body rule ends it.
    const over = await tricklers(agent, 2, { length: 2000, first: 1025 });
    clearInterval(timers.pop());
    let held = 0;
    for (let i = 0; i < 200 && held < 2; i++) {
      held = await inFlight(agent);
      if (held < 2) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(held).toBe(2);
    expect((await post(agent, '/echo', 'hello')).json).toMatchObject({ error: { code: 'CONCURRENCY_LIMIT_REACHED' } });
    const answers = await Promise.all([...atBound, ...over].map((raw) => raw.closedWithin(20_000, 'a stalled body')));
    for (const answer of answers) expectSlowBodyAnswer(answer, 2000);
    expect((await post(agent, '/echo', 'hello')).status).toBe(200);
    await agent.stop();
  });
});
