/**
 * The HTTP front against hostile requests (issue 14 §3 and §4, ADR 0017), with real processes:
 * the upstream fixture and the agent each in their own process, raw TCP clients here so that a
 * request can stop half-way. Slow headers and slow bodies get 408, a header block too large 431,
 * a body too large 413 (declared or streamed), `CONNECT` 405 — each as the agent's JSON error,
 * counted in `/metrics` — and a slow body gives its concurrency slot back.
 *
 * No timed assertions: waits for an answer are bounded generously (a multiple of the limit) only
 * so that a regression fails instead of hanging.
 */
import type { Socket } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Spawned, spawnAgent, spawnListening, stopAll } from '../../helpers/http-agent-process.js';
import { connectionsRefused, openRaw, parseRawResponse, type RawConnection } from '../../helpers/raw-http.js';

const FIXTURE = 'test/agent/http/fixtures/upstream.ts';
const POLICY = { affinity: { type: 'none' }, concurrencyPerInstance: 2, sessionsPerInstance: 2 };
const MiB = 1024 * 1024;

let upstream: Spawned & { url: string };
const sockets: Socket[] = [];

beforeAll(async () => {
  upstream = await spawnListening(FIXTURE);
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await stopAll();
});

type AgentProcess = Awaited<ReturnType<typeof spawnAgent>>;

function agentWith(args: string[]): Promise<AgentProcess> {
  return spawnAgent({ policy: POLICY, upstream: upstream.url, args });
}

function portOf(agent: AgentProcess): number {
  return Number(new URL(agent.url).port);
}

type Raw = RawConnection;
const open = (port: number): Promise<Raw> => openRaw(port, sockets);
const parse = parseRawResponse;
const refused = (agent: AgentProcess, reason: string): Promise<number> => connectionsRefused(agent.adminUrl, reason);

describe('HTTP front: time limits', () => {
  it('slow bodies get 408 REQUEST_TIMEOUT and give their concurrency slots back', async () => {
    const agent = await agentWith(['--http-request-timeout-ms', '1000', '--http-headers-timeout-ms', '500']);
    // Two bodies that never finish: they hold no slot (ADR 0023), and the request timeout, shorter
    // here than the body idle timeout, answers them first.
    const slow = await Promise.all([open(portOf(agent)), open(portOf(agent))]);
    for (const raw of slow) {
      raw.socket.write('POST /echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 1000\r\n\r\n0123456789');
    }
    const answers = await Promise.all(slow.map((raw) => raw.closedWithin(1000 * 3 + 10_000, 'a slow body')));
    for (const answer of answers) {
      expect(parse(answer)).toMatchObject({
        status: 408,
        headers: { 'content-type': 'application/json; charset=utf-8', connection: 'close' },
        body: {
          error: {
            code: 'REQUEST_TIMEOUT',
            message:
              'the request (headers and body) did not arrive within 1000 ms: send the whole request without pausing',
            status: 408,
            timeoutMs: 1000,
          },
        },
      });
    }
    // The slots are free again: a witness is served.
    const witness = await request(`${agent.url}/echo`, { method: 'POST', body: 'hello' });
    expect(witness.statusCode).toBe(200);
    expect(await witness.body.json()).toMatchObject({ bodyBytes: 5 });
    expect(await refused(agent, 'request-timeout')).toBe(2);
    expect(agent.logs().filter((l) => l.refusal === 'request-timeout').length).toBeGreaterThanOrEqual(1);
    await agent.stop();
  });

  it('headers that never end get 408 REQUEST_TIMEOUT as JSON', async () => {
    const agent = await agentWith(['--http-headers-timeout-ms', '500']);
    const raw = await open(portOf(agent));
    raw.socket.write('GET /echo HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: 1');
    const answer = parse(await raw.closedWithin(500 * 3 + 10_000, 'slow headers'));
    expect(answer).toMatchObject({
      status: 408,
      body: { error: { code: 'REQUEST_TIMEOUT', status: 408, timeoutMs: 500 } },
    });
    expect(await refused(agent, 'headers-timeout')).toBe(1);
    await agent.stop();
  });
});

describe('HTTP front: size limits', () => {
  it('a header block above --http-max-header-bytes gets 431 HEADERS_TOO_LARGE as JSON', async () => {
    const agent = await agentWith(['--http-max-header-bytes', '4096']);
    const raw = await open(portOf(agent));
    raw.socket.write(`GET /echo HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: ${'a'.repeat(8192)}\r\n\r\n`);
    expect(parse(await raw.closedWithin(10_000, 'a large header block'))).toMatchObject({
      status: 431,
      body: { error: { code: 'HEADERS_TOO_LARGE', status: 431, limit: 4096 } },
    });
    expect(await refused(agent, 'headers-too-large')).toBe(1);
    await agent.stop();
  });

  it('a declared body above --http-max-body-bytes gets 413 at once, before a byte of it is read', async () => {
    const agent = await agentWith(['--http-max-body-bytes', String(MiB)]);
    const raw = await open(portOf(agent));
    raw.socket.write(`POST /echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: ${20 * MiB}\r\n\r\n`);
    expect(parse(await raw.closedWithin(10_000, 'a declared 20 MiB body'))).toMatchObject({
      status: 413,
      headers: { connection: 'close' },
      body: {
        error: {
          code: 'PAYLOAD_TOO_LARGE',
          message: `the request body (Content-Length ${20 * MiB}) is larger than ${MiB} bytes: send less at once`,
          status: 413,
          limit: MiB,
        },
      },
    });
    // A body within the limit passes.
    const ok = await request(`${agent.url}/echo`, { method: 'POST', body: Buffer.alloc(MiB / 2) });
    expect(await ok.body.json()).toMatchObject({ bodyBytes: MiB / 2 });
    await agent.stop();
  });

  it('a chunked body that grows past --http-max-body-bytes gets 413 and is not read further', async () => {
    const agent = await agentWith(['--http-max-body-bytes', String(MiB)]);
    const raw = await open(portOf(agent));
    raw.socket.write('POST /echo HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\r\n');
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const header = `${chunk.length.toString(16)}\r\n`;
    // 2 MiB in chunks, never the final zero chunk.
    for (let i = 0; i < 32 && !raw.socket.destroyed; i++)
      raw.socket.write(Buffer.concat([Buffer.from(header), chunk, Buffer.from('\r\n')]));
    expect(parse(await raw.closedWithin(10_000, 'a chunked 2 MiB body'))).toMatchObject({
      status: 413,
      body: { error: { code: 'PAYLOAD_TOO_LARGE', status: 413, limit: MiB } },
    });
    expect(await refused(agent, 'body-too-large')).toBe(1);
    await agent.stop();
  });

  it('connections above --http-max-connections are dropped at accept and counted', async () => {
    const agent = await agentWith(['--http-max-connections', '3']);
    const held = await Promise.all([open(portOf(agent)), open(portOf(agent)), open(portOf(agent))]);
    const extra = await open(portOf(agent));
    expect(await extra.closedWithin(10_000, 'a fourth connection')).toBe('');
    expect(await refused(agent, 'connection-limit')).toBe(1);
    // The three held ones are served.
    held[0]!.socket.write('GET /echo HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n');
    expect(await held[0]!.closedWithin(10_000, 'a held connection')).toMatch(/^HTTP\/1\.1 200 /);
    await agent.stop();
  });
});

describe('HTTP front: CONNECT', () => {
  it('is answered 405 METHOD_NOT_ALLOWED with Allow, as JSON, and counted', async () => {
    const agent = await agentWith([]);
    const raw = await open(portOf(agent));
    raw.socket.write('CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n');
    expect(parse(await raw.closedWithin(10_000, 'a CONNECT'))).toMatchObject({
      status: 405,
      headers: { allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS', connection: 'close' },
      body: {
        error: {
          code: 'METHOD_NOT_ALLOWED',
          message:
            'CONNECT is not served: this agent is a reverse proxy, not a tunnel: send the request to the service itself, not a CONNECT',
          status: 405,
          method: 'CONNECT',
        },
      },
    });
    expect(await refused(agent, 'connect-method')).toBe(1);
    await agent.stop();
  });
});
