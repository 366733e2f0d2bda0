/**
 * JWT mode on the HTTP front (issue 19 §1, ADR 0020): the agent as an OAuth resource server in
 * front of a plain HTTP upstream. A real issuer runs on loopback in this process (keys generated
 * here, its JWKS served over HTTP); every bad token is refused with 401 and `WWW-Authenticate`,
 * the upstream never sees it (its hits are counted), and no log line repeats it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportSPKI, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { JwtVerifier } from '../../../agent/core/jwt.js';
import { newKey, startIssuer, type TestIssuer } from '../../helpers/oauth-issuer.js';
import { startUpstream as startRecordingUpstream } from './fixtures/upstream.js';
import { startTestAgent, type TestAgent } from './harness.js';

const POLICY = { affinity: { type: 'header', headerName: 'x-session' } };

interface Upstream {
  server: Server;
  url: string;
  hits: number;
  /** The Authorization header of each request that arrived. */
  authorizations: Array<string | undefined>;
}

async function startUpstream(): Promise<Upstream> {
  const upstream: Upstream = { server: createServer(), url: '', hits: 0, authorizations: [] };
  upstream.server.on('request', (req, res) => {
    upstream.hits++;
    upstream.authorizations.push(req.headers.authorization);
    res.end('hello');
  });
  await new Promise<void>((resolve) => upstream.server.listen(0, '127.0.0.1', resolve));
  upstream.url = `http://127.0.0.1:${(upstream.server.address() as AddressInfo).port}`;
  return upstream;
}

async function call(
  url: string,
  token: string | undefined,
  session = 's-1',
  extra: Record<string, string> = {},
): Promise<{ status: number; body: unknown; challenge: string | null }> {
  const response = await fetch(`${url}/hello`, {
    headers: { 'x-session': session, ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}), ...extra },
  });
  const text = await response.text();
  return {
    status: response.status,
    body: text.startsWith('{') ? JSON.parse(text) : text,
    challenge: response.headers.get('www-authenticate'),
  };
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('JWT mode on the HTTP front', () => {
  let issuer: TestIssuer;
  let upstream: Upstream;
  let agent: TestAgent;
  let audience: string;

  beforeAll(async () => {
    issuer = await startIssuer();
    upstream = await startUpstream();
    // The audience is the resource as clients reach it; the agent's own port is known after start,
    // so the test names a stable resource URL (what a platform's public URL would be).
    audience = 'http://127.0.0.1/resource';
    agent = await startTestAgent(
      POLICY,
      upstream.url,
      ['--jwt-issuer', issuer.issuer, '--jwt-audience', audience, '--jwt-tenant-claim', 'org'],
      { jwt: { refreshCooldownMs: 0, verifiedCacheMs: 0 } },
    );
  });
  afterAll(async () => {
    await agent?.stop();
    await new Promise((resolve) => upstream?.server.close(resolve));
    await issuer?.close();
  });

  it('serves a request with a valid token as the issuer-qualified principal, without the token upstream', async () => {
    const token = await issuer.sign({ sub: 'alice', aud: audience, org: 'acme' });
    const before = upstream.hits;
    const answer = await call(agent.url, token, 'alice-1');
    expect(answer).toMatchObject({ status: 200, body: 'hello' });
    expect(upstream.hits).toBe(before + 1);
    expect(upstream.authorizations.at(-1)).toBeUndefined();
    const session = agent.agent.context.sessions.get('alice-1');
    expect(session?.principal).toBe(`${issuer.issuer}#alice`);
    expect(session?.tenant).toBe('acme');
  });

  it('keeps another principal out of the session', async () => {
    const token = await issuer.sign({ sub: 'mallory', aud: audience, org: 'acme' });
    const answer = await call(agent.url, token, 'alice-1');
    expect(answer.status).toBe(403);
  });

  it('answers a request without a token 401 with the resource metadata in WWW-Authenticate', async () => {
    const before = upstream.hits;
    const answer = await call(agent.url, undefined);
    expect(answer.status).toBe(401);
    expect(answer.challenge).toBe(
      'Bearer resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource/resource"',
    );
    expect(answer.body).toEqual({
      error: {
        code: 'UNAUTHENTICATED',
        message: 'the request carries no bearer token (Authorization: Bearer <JWT>): present a valid token',
        status: 401,
      },
    });
    expect(upstream.hits).toBe(before);
  });

  it('serves the Protected Resource Metadata (RFC 9728) without a token, at both paths', async () => {
    for (const path of ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/resource']) {
      const response = await fetch(`${agent.url}${path}`);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({
        resource: audience,
        authorization_servers: [issuer.issuer],
        bearer_methods_supported: ['header'],
      });
    }
  });

  const badTokens: Array<[string, () => Promise<string>, string]> = [
    [
      'expired',
      () => issuer.sign({ sub: 'alice', aud: audience, exp: Math.floor(Date.now() / 1000) - 120 }),
      'expired',
    ],
    [
      'not valid yet',
      () => issuer.sign({ sub: 'alice', aud: audience, nbf: Math.floor(Date.now() / 1000) + 600 }),
      'not-yet-valid',
    ],
    ['for another audience', () => issuer.sign({ sub: 'alice', aud: 'http://127.0.0.1/other' }), 'audience'],
    ['without an audience', () => issuer.sign({ sub: 'alice' }), 'audience'],
    ['from another issuer', () => issuer.sign({ sub: 'alice', aud: audience, iss: 'http://127.0.0.1:1' }), 'issuer'],
    ['without exp', () => issuer.sign({ sub: 'alice', aud: audience, exp: undefined }), 'claim'],
    ['without sub', () => issuer.sign({ aud: audience, sub: undefined }), 'claim'],
    [
      'with alg none',
      async () => {
        const now = Math.floor(Date.now() / 1000);
        return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: issuer.issuer, aud: audience, sub: 'alice', exp: now + 300 })}.`;
      },
      'algorithm',
    ],
    [
      'signed by a key the issuer does not publish',
      async () => issuer.sign({ sub: 'alice', aud: audience }, { key: await issuer.strayKey() }),
      'unknown-key',
    ],
    [
      'with a tampered payload',
      async () => {
        const [header, payload, signature] = (await issuer.sign({ sub: 'alice', aud: audience })).split('.');
        const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8')) as Record<string, unknown>;
        return `${header}.${b64({ ...claims, sub: 'admin' })}.${signature}`;
      },
      'signature',
    ],
    [
      'signed HS256 with the public key as the secret',
      async () => {
        const key = issuer.keys[0]!;
        const pem = await exportSPKI((await newKeyPublic(key)) as CryptoKey);
        const now = Math.floor(Date.now() / 1000);
        return new SignJWT({ iss: issuer.issuer, aud: audience, sub: 'admin', exp: now + 300 })
          .setProtectedHeader({ alg: 'HS256', kid: key.kid })
          .sign(new TextEncoder().encode(pem));
      },
      'algorithm',
    ],
    ['oversized', () => issuer.sign({ sub: 'alice', aud: audience, pad: 'x'.repeat(9000) }), 'too-large'],
    ['not a JWT', async () => 'opaque-token-1234', 'malformed'],
  ];

  for (const [what, make, reason] of badTokens) {
    it(`refuses a token ${what} with 401 (${reason}); nothing reaches the upstream or the logs`, async () => {
      const token = await make();
      const before = upstream.hits;
      const answer = await call(agent.url, token, `bad-${reason}`);
      expect(answer.status).toBe(401);
      expect(answer.body).toMatchObject({ error: { code: 'INVALID_TOKEN', status: 401, reason } });
      expect(answer.challenge).toMatch(/^Bearer error="invalid_token", error_description="[^"]+", resource_metadata="/);
      expect(upstream.hits).toBe(before);
      expect(JSON.stringify(agent.logs)).not.toContain(token);
      expect(JSON.stringify(answer.body)).not.toContain(token);
    });
  }

  it('refuses another scheme than Bearer', async () => {
    const before = upstream.hits;
    const answer = await call(agent.url, undefined, 's-basic', { authorization: 'Basic YWxpY2U6c2VjcmV0' });
    expect(answer.status).toBe(401);
    expect(answer.body).toMatchObject({ error: { code: 'INVALID_TOKEN', reason: 'malformed' } });
    expect(upstream.hits).toBe(before);
  });

  it("follows the issuer's key rotation: a new kid fetches the JWKS again, a dropped key stops working", async () => {
    const oldToken = await issuer.sign({ sub: 'rotor', aud: audience });
    expect((await call(agent.url, oldToken, 'rotor-1')).status).toBe(200);
    const fetches = issuer.jwksFetches();
    await issuer.rotate({ dropOld: true });
    const newToken = await issuer.sign({ sub: 'rotor', aud: audience });
    expect((await call(agent.url, newToken, 'rotor-1')).status).toBe(200);
    expect(issuer.jwksFetches()).toBeGreaterThan(fetches);
    const stale = await call(agent.url, oldToken, 'rotor-1');
    expect(stale.status).toBe(401);
    expect(stale.body).toMatchObject({ error: { reason: 'unknown-key' } });
  });

  it('never logged any token it saw', () => {
    expect(JSON.stringify(agent.logs)).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/);
  });
});

describe("JWT mode with the policy's forwardBearerToken", () => {
  it('passes the verified token on to the upstream only when the policy says so', async () => {
    const issuer = await startIssuer();
    const upstream = await startUpstream();
    const audience = 'https://mcp.example/';
    const agent = await startTestAgent({ ...POLICY, forwardBearerToken: true }, upstream.url, [
      '--jwt-issuer',
      issuer.issuer,
      '--jwt-audience',
      audience,
      '--jwks-url',
      issuer.jwksUrl,
    ]);
    try {
      const token = await issuer.sign({ sub: 'bob', aud: audience });
      expect((await call(agent.url, token, 'bob-1')).status).toBe(200);
      expect(upstream.authorizations).toEqual([`Bearer ${token}`]);
    } finally {
      await agent.stop();
      await new Promise((resolve) => upstream.server.close(resolve));
      await issuer.close();
    }
  });
});

describe('JWT mode on WebSocket upgrades', () => {
  it('verifies the token on the handshake and keeps it from the upstream', async () => {
    const issuer = await startIssuer();
    const upstream = await startRecordingUpstream();
    const audience = 'https://ws.example/';
    const agent = await startTestAgent(POLICY, upstream.url, [
      '--jwt-issuer',
      issuer.issuer,
      '--jwt-audience',
      audience,
    ]);
    const url = `${agent.url.replace('http:', 'ws:')}/ws`;
    const handshake = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(url, { headers: { 'x-session': 'ws-1', ...headers } });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => {
          ws.close();
          resolve(101);
        });
        ws.on('error', reject);
      });
    try {
      expect(await handshake({})).toBe(401);
      expect(upstream.received).toEqual([]);
      const token = await issuer.sign({ sub: 'wanda', aud: audience });
      expect(await handshake({ authorization: `Bearer ${token}` })).toBe(101);
      expect(upstream.received).toHaveLength(1);
      expect(upstream.received[0]?.headers.upgrade).toBe('websocket');
      expect(upstream.received[0]?.headers.authorization).toBeUndefined();
    } finally {
      await agent.stop();
      await upstream.close();
      await issuer.close();
    }
  });
});

/** The public half of an issuer key, as an attacker would download it from the JWKS. */
async function newKeyPublic(key: { publicJwk: Record<string, unknown> }): Promise<CryptoKey> {
  const { importJWK } = await import('jose');
  return (await importJWK({ ...key.publicJwk, ext: true }, 'ES256', { extractable: true })) as CryptoKey;
}

describe('the JWKS fetches are bounded', () => {
  it('an unknown kid fetches the key set again at most once per cool-down', async () => {
    const issuer = await startIssuer();
    try {
      const verifier = new JwtVerifier(
        { issuer: issuer.issuer, audience: 'https://mcp.example/', principalClaim: 'sub' },
        {},
      );
      const good = await issuer.sign({ sub: 'a', aud: 'https://mcp.example/' });
      expect(await verifier.verify(good)).toEqual({ principal: `${issuer.issuer}#a`, tenant: undefined });
      const fetched = issuer.jwksFetches();
      const stray = await newKey();
      for (let i = 0; i < 20; i++) {
        const token = await issuer.sign({ sub: `x${i}`, aud: 'https://mcp.example/' }, { key: stray });
        expect(await verifier.verify(token)).toMatchObject({ code: 'INVALID_TOKEN' });
      }
      expect(issuer.jwksFetches() - fetched).toBeLessThanOrEqual(1);
    } finally {
      await issuer.close();
    }
  });

  it('an issuer whose keys cannot be read gives 503 TOKEN_KEYS_UNAVAILABLE, not a 401', async () => {
    const verifier = new JwtVerifier(
      { issuer: 'http://127.0.0.1:1', audience: 'https://mcp.example/', principalClaim: 'sub' },
      {},
      { fetchTimeoutMs: 1000 },
    );
    const key = await newKey();
    const token = await new SignJWT({ sub: 'a', aud: 'https://mcp.example/', iss: 'http://127.0.0.1:1', exp: 2e9 })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid })
      .sign(key.privateKey);
    const refused = await verifier.verify(token);
    expect(refused).toMatchObject({ code: 'TOKEN_KEYS_UNAVAILABLE' });
  });
});
