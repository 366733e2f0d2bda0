/**
 * An agent whose own upstream is down still takes new sessions: it places them on a healthy peer
 * (issue 14: 25 of 25 new sessions through such an agent got 502 while its peer had room). Two
 * HTTP agent processes on a private redis-server, each in front of its own real MCP server; a's
 * server is then stopped. Every one of 25 new sessions through a must be created, held by b, and
 * answer `echo` through a.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentProcess, type Spawned, spawnListening, stopAll } from '../../helpers/http-agent-process.js';
import { type RedisServer, startRedisServer } from '../../helpers/redis-server.js';
import { fleetAdmin, spawnMembers, waitFor } from './helpers.js';

const ADMIN_TOKEN = 'admin-token-upstream-down-5c1e';
const IDS = ['a', 'b'] as const;
type Id = (typeof IDS)[number];

let redis: RedisServer;
const upstreams = {} as Record<Id, Spawned & { url: string }>;
let agents: Record<Id, AgentProcess>;
const clients: Client[] = [];
const admin = fleetAdmin<Id>((id) => agents[id].adminUrl, ADMIN_TOKEN);

beforeAll(async () => {
  redis = await startRedisServer();
  for (const id of IDS) upstreams[id] = await spawnListening('demo/mcp-server.ts');
  ({ agents } = await spawnMembers({
    ids: IDS,
    policy: { affinity: { type: 'mcp-streamable-http' }, sessionsPerInstance: 40, placementWaitSeconds: 0 },
    upstream: (id) => upstreams[id].url,
    redisUrl: redis.url,
    adminToken: ADMIN_TOKEN,
    extraArgs: ['--probe-interval-ms', '200'],
  }));
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
  await stopAll();
  await redis?.stop();
});

async function upstreamUp(id: Id): Promise<boolean> {
  const body = (await (await fetch(`${agents[id].adminUrl}/healthz`)).json()) as { upstreamUp: boolean };
  return body.upstreamUp;
}

describe('an agent whose own upstream is down (HTTP front, 2 agents, real MCP servers)', () => {
  it('places every new session on the healthy peer instead of answering 502', async () => {
    await upstreams.a.stop('SIGKILL');
    await waitFor("a's probe to see its upstream down", async () => !(await upstreamUp('a')), 10_000, 50);
    // The fleet learns it from a's next heartbeat (sent at once on the change). Not asserted here:
    // what counts is what the clients get.
    await waitFor(
      'a to offer no slot',
      async () => {
        const all = (await admin.admin('b', '/admin/fleet/instances')).body.instances as Array<{
          id: string;
          capacity: number;
        }>;
        return all.find((i) => i.id === 'a')?.capacity === 0;
      },
      3000,
      50,
    ).catch(() => {});

    const outcomes: string[] = [];
    const created: string[] = [];
    for (let i = 0; i < 25; i++) {
      const transport = new StreamableHTTPClientTransport(new URL(`${agents.a.url}/mcp`));
      const client = new Client({ name: `upstream-down-${i}`, version: '1.0.0' });
      clients.push(client);
      try {
        await client.connect(transport);
        const text = `hello ${i}`;
        const result = await client.callTool({ name: 'echo', arguments: { text } });
        const ok = JSON.stringify(result.content) === JSON.stringify([{ type: 'text', text }]);
        outcomes.push(ok ? 'ok' : `wrong ${JSON.stringify(result)}`);
        created.push(transport.sessionId!);
      } catch (error) {
        outcomes.push(`failed ${error instanceof Error ? error.message.slice(0, 120) : String(error)}`);
      }
    }
    console.log(`upstream down on a: 25 new sessions through a: ${outcomes.filter((o) => o === 'ok').length} ok`);
    expect(outcomes.filter((o) => o !== 'ok')).toEqual([]);
    const owners = await admin.owners('a');
    expect(created.map((id) => owners[id])).toEqual(created.map(() => 'b'));
  }, 60_000);
});
