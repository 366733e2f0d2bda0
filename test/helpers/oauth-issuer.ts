/**
 * A real authorization server for tests, on loopback in the test process: keys generated in the
 * test (jose), its RFC 8414 metadata, a JWKS over HTTP (fetches counted), key rotation, and a
 * token endpoint for the client-credentials grant (RFC 6749 §4.4) that binds each token to the
 * `resource` it was asked for (RFC 8707), which is what the MCP SDK's client auth provider uses.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';

export interface IssuerKey {
  readonly kid: string;
  readonly alg: 'ES256' | 'RS256';
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export interface TestIssuer {
  /** The issuer identifier (`iss`), `http://127.0.0.1:<port>`. */
  readonly issuer: string;
  readonly jwksUrl: string;
  /** How many times the JWKS was fetched. */
  readonly jwksFetches: () => number;
  /** The keys the JWKS publishes now, newest first. */
  readonly keys: IssuerKey[];
  /** Signs `claims` (iss, iat, exp and a jti filled in unless given) with the newest key, or `key`. */
  sign(claims: JWTPayload, options?: { key?: IssuerKey; header?: Record<string, unknown> }): Promise<string>;
  /** A new key, published first; `dropOld` removes the others from the JWKS. */
  rotate(options?: { dropOld?: boolean }): Promise<IssuerKey>;
  /** A key this issuer does not publish. */
  strayKey(): Promise<IssuerKey>;
  /** Client credentials the token endpoint accepts, and the subject of their tokens. */
  readonly client: { id: string; secret: string; subject: string };
  close(): Promise<void>;
}

export async function newKey(alg: 'ES256' | 'RS256' = 'ES256'): Promise<IssuerKey & { publicKey: CryptoKey }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomUUID();
  return { kid, alg, privateKey, publicKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export async function startIssuer(options: { subject?: string; tenant?: string } = {}): Promise<TestIssuer> {
  const keys: IssuerKey[] = [await newKey()];
  let fetches = 0;
  const client = { id: 'test-client', secret: 'test-client-secret', subject: options.subject ?? 'svc-robot' };
  let issuer = '';
  const sign = (claims: JWTPayload, opts: { key?: IssuerKey; header?: Record<string, unknown> } = {}) => {
    const key = opts.key ?? keys[0]!;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: issuer, iat: now, exp: now + 300, jti: randomUUID(), ...claims })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt', ...opts.header })
      .sign(key.privateKey);
  };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && url.pathname === '/.well-known/oauth-authorization-server') {
      return json(200, {
        issuer,
        jwks_uri: `${issuer}/jwks`,
        token_endpoint: `${issuer}/token`,
        // Required by RFC 8414 (and the SDK's schema) even for an issuer that serves no user logins.
        authorization_endpoint: `${issuer}/authorize`,
        grant_types_supported: ['client_credentials'],
        token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        response_types_supported: ['token'],
      });
    }
    if (req.method === 'GET' && url.pathname === '/jwks') {
      fetches++;
      return json(200, { keys: keys.map((k) => k.publicJwk) });
    }
    if (req.method === 'POST' && url.pathname === '/token') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        const [id, secret] = basic
          ? Buffer.from(basic, 'base64').toString('utf8').split(':').map(decodeURIComponent)
          : [form.get('client_id'), form.get('client_secret')];
        if (id !== client.id || secret !== client.secret) return json(401, { error: 'invalid_client' });
        if (form.get('grant_type') !== 'client_credentials') return json(400, { error: 'unsupported_grant_type' });
        const resource = form.get('resource');
        if (!resource) return json(400, { error: 'invalid_target', error_description: 'resource is required' });
        void sign({ sub: client.subject, aud: resource, ...(options.tenant ? { tenant: options.tenant } : {}) }).then(
          (token) => json(200, { access_token: token, token_type: 'Bearer', expires_in: 300 }),
        );
      });
      return;
    }
    json(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    jwksUrl: `${issuer}/jwks`,
    jwksFetches: () => fetches,
    keys,
    sign,
    async rotate({ dropOld = false } = {}) {
      const key = await newKey();
      if (dropOld) keys.splice(0);
      keys.unshift(key);
      return key;
    },
    strayKey: () => newKey(),
    client,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
