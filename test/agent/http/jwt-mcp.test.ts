/**
 * JWT mode with a real MCP client (issue 19 §1): the SDK's `Client` over Streamable HTTP with its
 * own OAuth client auth provider (client credentials), against the agent in front of the real
 * SDK demo server. The client starts without a token: the agent's 401 sends it to the Protected
 * Resource Metadata the agent serves, from there to the issuer's metadata and token endpoint,
 * and it retries with an audience-bound token. Everything in this process, on loopback.
 */

import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoMcpServer, startDemoMcpServer } from '../../../demo/mcp-server.js';
import { startIssuer, type TestIssuer } from '../../helpers/oauth-issuer.js';
import { freePort } from '../../helpers/redis-server.js';
import { startTestAgent, type TestAgent } from './harness.js';

describe('a real MCP client with an OAuth auth provider against the agent in JWT mode', () => {
  let issuer: TestIssuer;
  let server: DemoMcpServer;
  let agent: TestAgent;
  let resource: string;

  beforeAll(async () => {
    issuer = await startIssuer({ subject: 'robot-7' });
    server = await startDemoMcpServer();
    const port = await freePort();
    resource = `http://127.0.0.1:${port}/mcp`;
    agent = await startTestAgent({ affinity: { type: 'mcp-streamable-http' } }, server.url, [
      '--listen',
      `127.0.0.1:${port}`,
      '--jwt-issuer',
      issuer.issuer,
      '--jwt-audience',
      resource,
    ]);
  });
  afterAll(async () => {
    await agent?.stop();
    await server?.close();
    await issuer?.close();
  });

  it('discovers the issuer through the agent, gets a token for the resource, and is served as its principal', async () => {
    const provider = new ClientCredentialsProvider({
      clientId: issuer.client.id,
      clientSecret: issuer.client.secret,
      expectedIssuer: issuer.issuer,
    });
    const client = new Client({ name: 'jwt-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider });
    try {
      await client.connect(transport);
      const result = (await client.callTool({ name: 'echo', arguments: { text: 'hi' } })) as {
        content: Array<{ text: string }>;
      };
      expect(result.content[0]?.text).toBe('hi');
      const token = provider.tokens()?.access_token;
      expect(token).toBeTypeOf('string');
      const sessionId = transport.sessionId;
      expect(sessionId).toBeTypeOf('string');
      expect(agent.agent.context.sessions.get(sessionId!)?.principal).toBe(`${issuer.issuer}#robot-7`);
      expect(JSON.stringify(agent.logs)).not.toContain(token);
    } finally {
      await client.close().catch(() => {});
    }
  });

  it('refuses the same client with a token meant for another resource', async () => {
    const token = await issuer.sign({ sub: 'robot-7', aud: 'http://127.0.0.1:1/mcp' });
    const before = agent.agent.context.sessions.size;
    const client = new Client({ name: 'jwt-test-2', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(resource), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    });
    await expect(client.connect(transport)).rejects.toThrow(/401|invalid_token|Unauthorized/i);
    await client.close().catch(() => {});
    expect(agent.agent.context.sessions.size).toBe(before);
  });
});
