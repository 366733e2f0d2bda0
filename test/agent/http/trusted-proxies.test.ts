/**
 * `--trusted-proxies`: the principal header is the authenticating proxy's word, so the agent takes
 * it only from the proxy's addresses. Real HTTP over loopback: 127.0.0.1 plays the proxy,
 * 127.0.0.2 (also loopback on Linux) any other pod.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTrustedSource, parseTrustedProxies } from '../../../agent/core/trusted-proxies.js';
import { startTestAgent, type TestAgent } from './harness.js';

const POLICY = { affinity: { type: 'header', headerName: 'x-session' } };

function get(
  url: string,
  headers: Record<string, string>,
  localAddress: string,
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/hello`, { headers, localAddress }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, body: text.startsWith('{') ? JSON.parse(text) : text });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the principal header from trusted and untrusted sources', () => {
  let upstream: Server;
  let agent: TestAgent;

  beforeAll(async () => {
    upstream = createServer((req, res) => res.end(`hello ${req.headers['x-user']}`));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const port = (upstream.address() as AddressInfo).port;
    agent = await startTestAgent(POLICY, `http://127.0.0.1:${port}`, [
      '--principal-header',
      'x-user',
      '--trusted-proxies',
      '127.0.0.1/32,fd00::/8',
    ]);
  });
  afterAll(async () => {
    await agent?.stop();
    await new Promise((resolve) => upstream?.close(resolve));
  });

  it('serves a request from the proxy address', async () => {
    const answer = await get(agent.url, { 'x-user': 'alice', 'x-session': 's-1' }, '127.0.0.1');
    expect(answer).toEqual({ status: 200, body: 'hello alice' });
  });

  it('refuses the header from any other address, with the catalogue error', async () => {
    const answer = await get(agent.url, { 'x-user': 'alice', 'x-session': 's-2' }, '127.0.0.2');
    expect(answer).toEqual({
      status: 403,
      body: {
        error: {
          code: 'PRINCIPAL_SOURCE_UNTRUSTED',
          message:
            'the x-user header is accepted only from the authenticating proxy (--trusted-proxies), not from 127.0.0.2: send the request through the authenticating proxy',
          status: 403,
          header: 'x-user',
        },
      },
    });
  });

  it('still asks a caller without the header to authenticate', async () => {
    const answer = await get(agent.url, { 'x-session': 's-3' }, '127.0.0.2');
    expect(answer.status).toBe(401);
    expect((answer.body as { error: { code: string } }).error.code).toBe('UNAUTHENTICATED');
  });
});

describe('trusted proxy ranges', () => {
  it('parses comma-separated IPv4 and IPv6 CIDRs and refuses anything else', () => {
    expect(parseTrustedProxies('10.0.0.0/8, fd00::/8')).toEqual(['10.0.0.0/8', 'fd00::/8']);
    for (const bad of ['', '10.0.0.0', '10.0.0.0/33', '::/129', 'proxy/8', '10.0.0.0/8/1']) {
      expect(parseTrustedProxies(bad), bad).toBeUndefined();
    }
  });

  it('matches addresses as sockets report them, IPv4-mapped IPv6 included', () => {
    const cidrs = ['10.0.0.0/8', 'fd00::/8'];
    expect(isTrustedSource('10.1.2.3', cidrs)).toBe(true);
    expect(isTrustedSource('::ffff:10.1.2.3', cidrs)).toBe(true);
    expect(isTrustedSource('fd12::1', cidrs)).toBe(true);
    expect(isTrustedSource('11.0.0.1', cidrs)).toBe(false);
    expect(isTrustedSource('::ffff:11.0.0.1', cidrs)).toBe(false);
    expect(isTrustedSource(undefined, cidrs)).toBe(false);
  });
});
