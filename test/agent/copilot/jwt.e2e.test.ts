/**
 * JWT mode on the Copilot front (issue 19 §1): `connect` accepts a verified bearer JWT as the
 * SDK's `connectionToken`, besides the tokens of `--principals`. Real peers: the Copilot CLI from
 * npm, the agent as a process, `@github/copilot-sdk` clients, and an issuer on loopback in this
 * process (keys generated here, JWKS discovered from its metadata).
 */
import { approveAll, CopilotClient, RuntimeConnection } from '@github/copilot-sdk';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CopilotAgent, startCopilotAgent } from '../../helpers/copilot-agent.js';
import { type CopilotCli, startCopilotCli } from '../../helpers/copilot-cli.js';
import { openRawClient, rpcErrorOf } from '../../helpers/copilot-rpc.js';
import { startIssuer, type TestIssuer } from '../../helpers/oauth-issuer.js';

const FILE_TOKEN = 'alice-token-5f1c9e2a7b';
const AUDIENCE = 'https://copilot.example.com/';
const POLICY = { affinity: { type: 'copilot-jsonrpc' }, sessionsPerInstance: 3, concurrencyPerInstance: 50 };

let cli: CopilotCli;
let agent: CopilotAgent;
let issuer: TestIssuer;
const clients: CopilotClient[] = [];
const tokens: string[] = [];

beforeAll(async () => {
  [cli, issuer] = await Promise.all([startCopilotCli(), startIssuer()]);
  agent = await startCopilotAgent({
    policy: POLICY,
    upstreamPort: cli.port,
    upstreamToken: cli.token,
    principals: { [FILE_TOKEN]: 'alice' },
    extraArgs: ['--jwt-issuer', issuer.issuer, '--jwt-audience', AUDIENCE, '--jwt-tenant-claim', 'org'],
  });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.stop().catch(() => [])));
});

afterAll(async () => {
  await agent?.dispose();
  await cli?.dispose();
  await issuer?.close();
});

function sdk(token: string): CopilotClient {
  const client = new CopilotClient({ connection: RuntimeConnection.forUri(agent.address, { connectionToken: token }) });
  clients.push(client);
  return client;
}

async function jwt(claims: Record<string, unknown>): Promise<string> {
  const token = await issuer.sign({ aud: AUDIENCE, ...claims });
  tokens.push(token);
  return token;
}

describe('Copilot front: verified bearer tokens in connect', () => {
  it('serves a client whose connectionToken is a valid JWT, as <issuer>#<sub>, and keeps users apart', async () => {
    const carol = sdk(await jwt({ sub: 'carol', org: 'acme' }));
    const session = await carol.createSession({ onPermissionRequest: approveAll });
    const dave = sdk(await jwt({ sub: 'dave', org: 'acme' }));
    const refusal = await rpcErrorOf(dave.resumeSession(session.sessionId, { onPermissionRequest: approveAll }));
    expect(refusal.data).toMatchObject({ code: 'SESSION_FORBIDDEN', sessionId: session.sessionId });
    const line = await agent.waitForLog(
      (l) => l.msg === 'Copilot session created' && l.sessionId === session.sessionId,
    );
    expect(line.principal).toBe(`${issuer.issuer}#carol`);
  });

  it('still accepts the tokens of --principals', async () => {
    const alice = sdk(FILE_TOKEN);
    const session = await alice.createSession({ onPermissionRequest: approveAll });
    expect(session.sessionId).toBeTypeOf('string');
  });

  it('refuses an expired, a wrong-audience and an unknown-key token with INVALID_TOKEN, and closes', async () => {
    const cases: Array<[string, string]> = [
      [await jwt({ sub: 'carol', exp: Math.floor(Date.now() / 1000) - 600 }), 'expired'],
      [await jwt({ sub: 'carol', aud: 'https://other.example.com/' }), 'audience'],
      [await issuer.sign({ sub: 'carol', aud: AUDIENCE }, { key: await issuer.strayKey() }), 'unknown-key'],
    ];
    for (const [token, reason] of cases) {
      tokens.push(token);
      const client = await openRawClient(agent.clientPort);
      const reply = await client.call('connect', { token }, 3);
      expect(reply.error).toMatchObject({ code: -31070, data: { code: 'INVALID_TOKEN', status: 401, reason } });
      await client.closed;
    }
  });

  it('never logs a token', () => {
    for (const token of [...tokens, FILE_TOKEN]) expect(agent.output()).not.toContain(token);
  });
});
