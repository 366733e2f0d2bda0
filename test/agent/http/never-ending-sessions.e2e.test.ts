/**
 * Clients that never end their sessions (issue 15 item 11): the official conformance runner and
 * the SDK client's `close()` drop the connection without a DELETE. Under `reject` eviction the
 * slots stayed taken for the whole idle timeout (1800 s by default) and every new client got 429;
 * `limits.evictIdleAfterSeconds` lets a full instance give up a session idle that long instead.
 * Real processes: the sample MCP server (SDK v1, sessionful) behind a real agent.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AgentProcess,
  type Spawned,
  spawnAgent,
  spawnListening,
  stopAll,
} from '../../helpers/http-agent-process.js';
import { until } from './harness.js';

const ADMIN_TOKEN = 'test-admin-token';
let server: Spawned & { url: string };

beforeAll(async () => {
  server = await spawnListening('demo/mcp-server.ts');
});
afterAll(async () => {
  await stopAll();
});

async function connect(a: AgentProcess): Promise<Client> {
  const client = new Client({ name: 'never-deletes', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${a.url}/mcp`)));
  return client;
}

async function sessions(a: AgentProcess) {
  const response = await fetch(`${a.adminUrl}/admin/sessions`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return ((await response.json()) as { sessions: Array<{ id: string; openStreams: number }> }).sessions;
}

describe('clients that never end their sessions', () => {
  it('a full instance gives up a session idle past evictIdleAfterSeconds to a new client', async () => {
    const a = await spawnAgent({
      policy: {
        affinity: { type: 'mcp-streamable-http' },
        sessionsPerInstance: 2,
        // The default idle timeout: without eviction the two slots stay taken for 30 minutes.
        sessionIdleTimeoutSeconds: 1800,
        limits: { evictIdleAfterSeconds: 1 },
      },
      upstream: server.url,
      args: ['--admin-token', ADMIN_TOKEN],
    });
    // Two clients that go away without a DELETE (close() only drops the connection).
    for (let i = 0; i < 2; i++) await (await connect(a)).close();
    await until(async () => (await sessions(a)).every((s) => s.openStreams === 0), 10_000, 'the streams gone');
    expect((await sessions(a)).length).toBe(2);

    // A third client gets a slot once one of them has been idle evictIdleAfterSeconds.
    let third: Client | undefined;
    await until(
      async () => {
        third = await connect(a).catch(() => undefined);
        return third !== undefined;
      },
      15_000,
      'a new client admitted',
    );
    const result = (await third!.callTool({ name: 'whoami', arguments: {} })) as { content: Array<{ text: string }> };
    expect(result.content[0]?.text).toBeTruthy();
    expect((await sessions(a)).length).toBe(2);
    await third!.close();
  });
});
