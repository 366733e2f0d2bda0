/**
 * A Redis outage under load, end to end: a private redis-server (this file stops and restarts it),
 * three agent processes with `--redis`, each in front of its own real MCP server
 * (`demo/mcp-server.ts`). Agents a and b run the default policy (`failOpen: false`), agent c the
 * same policy with `failOpen: true`. While SDK clients call `echo` in a loop on sessions held by
 * the agent they talk to, and new sessions are tried every few milliseconds, redis-server is
 * stopped: local sessions must not notice, new sessions get 503 STORE_UNAVAILABLE (or, on c, are
 * placed there), `/readyz/serving` stays 200 (their sessions are served) while `/readyz` says why new ones are refused. Then redis-server comes back empty on the same port and the
 * fleet recovers with no restart: new sessions are placed again and routed through another agent.
 * The tests run in order on one fleet; the outcome counts are printed.
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
import { type RedisServer, startRedisServer } from '../../helpers/redis-server.js';
import { memberArgs, memberPorts, uniqueFleet } from './helpers.js';

const ADMIN_TOKEN = 'admin-token-http-outage-7d21b4';
const IDS = ['a', 'b', 'c'] as const;
type Id = (typeof IDS)[number];
const POLICY = {
  affinity: { type: 'mcp-streamable-http' },
  sessionsPerInstance: 50,
  maxInstances: 3,
  placementWaitSeconds: 0,
};
const FAIL_OPEN: Record<Id, boolean> = { a: false, b: false, c: true };
const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});
const STORE_UNAVAILABLE = {
  jsonrpc: '2.0',
  error: {
    code: -31017,
    message: 'the fleet store (Redis) is unreachable: retry shortly',
    data: { code: 'STORE_UNAVAILABLE', status: 503, retryAfterSeconds: 2 },
  },
  id: null,
};

let redis: RedisServer;
const upstreams = {} as Record<Id, Spawned & { url: string }>;
const agents = {} as Record<Id, AgentProcess>;
const clients: Client[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  const fleet = uniqueFleet();
  const portOf = await memberPorts(IDS);
  await Promise.all(
    IDS.map(async (id) => {
      upstreams[id] = await spawnListening('demo/mcp-server.ts');
      agents[id] = await spawnAgent({
        policy: { ...POLICY, failOpen: FAIL_OPEN[id] },
        upstream: upstreams[id].url,
        args: memberArgs({ id, port: portOf[id], redisUrl: redis.url, fleet, adminToken: ADMIN_TOKEN }),
      });
    }),
  );
  await eventually(async () => (await liveInstances('a')) === 3, 10_000, 'three live');
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
  await stopAll();
  await redis?.stop();
});

async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`not ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function liveInstances(via: Id): Promise<number> {
  const response = await fetch(`${agents[via].adminUrl}/admin/fleet/instances`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  if (response.status !== 200) return -1;
  const { instances } = (await response.json()) as { instances: Array<{ alive: boolean }> };
  return instances.filter((i) => i.alive).length;
}

async function owners(via: Id): Promise<Record<string, string>> {
  const response = await fetch(`${agents[via].adminUrl}/admin/fleet/sessions`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  const { sessions } = (await response.json()) as { sessions: Array<{ id: string; owner: string }> };
  return Object.fromEntries(sessions.map((s) => [s.id, s.owner]));
}

async function connect(via: Id, sessionId?: string): Promise<{ client: Client; sessionId: string }> {
  const transport = new StreamableHTTPClientTransport(
    new URL(`${agents[via].url}/mcp`),
    sessionId ? { sessionId } : {},
  );
  const client = new Client({ name: `outage-${via}`, version: '1.0.0' });
  clients.push(client);
  await client.connect(transport);
  return { client, sessionId: transport.sessionId! };
}

async function whoami(client: Client): Promise<string> {
  const result = (await client.callTool({ name: 'whoami', arguments: {} })) as { content: Array<{ text: string }> };
  return result.content[0]?.text ?? '';
}

function rawInitialize(via: Id) {
  return fetch(`${agents[via].url}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: INITIALIZE,
  });
}

async function readyz(via: Id, path = '/readyz') {
  const response = await fetch(`${agents[via].adminUrl}${path}`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Whether the agent stays in the Service's rotation (`/readyz/serving`). */
const serving = (via: Id) => readyz(via, '/readyz/serving');

const outcomes = {
  localCallOk: 0,
  localCallFailed: 0,
  newSession503: 0,
  newSessionOther: 0,
  newSessionFailOpen200: 0,
};

describe('the HTTP front through a Redis outage (3 agents, a private redis-server, real MCP servers)', () => {
  it('keeps serving sessions held locally and answers new sessions 503 while Redis is down', async () => {
    // Two sessions on each of a and b, each created (and so held) by the agent its client talks to.
    const held: Array<{ via: Id; client: Client; sessionId: string }> = [];
    for (const via of ['a', 'a', 'b', 'b'] as const) held.push({ via, ...(await connect(via)) });
    const before = await owners('c');
    for (const h of held) expect(before[h.sessionId]).toBe(h.via);

    let stop = false;
    const unexpected: string[] = [];
    const callLoops = held.map(async ({ client }, n) => {
      let i = 0;
      while (!stop) {
        const text = `call ${n}.${i++}`;
        try {
          const result = await client.callTool({ name: 'echo', arguments: { text } });
          if (JSON.stringify(result.content) === JSON.stringify([{ type: 'text', text }])) outcomes.localCallOk++;
          else {
            outcomes.localCallFailed++;
            unexpected.push(JSON.stringify(result));
          }
        } catch (error) {
          outcomes.localCallFailed++;
          unexpected.push(String(error));
        }
      }
    });
    let newSessionLoop: Promise<void> = Promise.resolve();
    const startNewSessionLoop = () => {
      newSessionLoop = (async () => {
        while (!stop) {
          for (const via of ['a', 'b'] as const) {
            const response = await rawInitialize(via);
            const body = await response.text();
            if (response.status === 503 && response.headers.get('retry-after') === '2') {
              outcomes.newSession503++;
              expect(JSON.parse(body)).toEqual(STORE_UNAVAILABLE);
            } else {
              outcomes.newSessionOther++;
              unexpected.push(`${via} initialize ${response.status} ${body}`);
            }
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
    };

    try {
      // Load before the outage, then the outage itself.
      await eventually(async () => outcomes.localCallOk >= 40, 10_000, 'loaded');
      const okBeforeOutage = outcomes.localCallOk;
      await redis.stop();
      // Both agents notice the lost connection (they stop accepting new sessions), then every new
      // session is tried.
      for (const via of ['a', 'b'] as const)
        await eventually(async () => (await readyz(via)).status === 503, 10_000, `${via} not accepting`);
      startNewSessionLoop();
      // Keep the load on for a while with Redis away (by count, not by time).
      const okAtOutage = outcomes.localCallOk;
      await eventually(async () => outcomes.localCallOk >= okAtOutage + 200, 15_000, '200 calls during the outage');
      await eventually(async () => outcomes.newSession503 >= 10, 10_000, '10 refusals');
      expect(outcomes.localCallOk).toBeGreaterThan(okBeforeOutage);
    } finally {
      stop = true;
      await Promise.all([...callLoops, newSessionLoop]);
    }
    expect(unexpected).toEqual([]);
    expect(outcomes.localCallFailed).toBe(0);
    expect(outcomes.newSessionOther).toBe(0);

    // Neither leaves the Service's rotation (their sessions were served throughout); both say they
    // take no new session.
    for (const via of ['a', 'b'] as const) {
      expect(await readyz(via)).toEqual({
        status: 503,
        body: {
          status: 'not ready',
          reasons: ['fleet store (Redis) is unreachable'],
          sessions: 2,
          capacity: 50,
          serving: { inRotation: true, reasons: [] },
        },
      });
      expect(await serving(via)).toEqual({
        status: 200,
        body: { status: 'serving', reasons: [], sessions: 2, capacity: 50 },
      });
    }
  });

  it('places a new session locally during the outage with failOpen: true', async () => {
    const response = await rawInitialize('c');
    expect(response.status).toBe(200);
    const sessionId = response.headers.get('mcp-session-id');
    expect(sessionId).toBeTruthy();
    await response.body?.cancel();
    outcomes.newSessionFailOpen200++;
    // The SDK client too: the session it gets is served by c's own MCP server.
    const { client, sessionId: sdkSession } = await connect('c');
    expect(await whoami(client)).toBe(sdkSession);
    outcomes.newSessionFailOpen200++;
    // failOpen keeps c ready: it still takes new sessions.
    expect(await readyz('c')).toEqual({
      status: 200,
      body: { status: 'ready', reasons: [], sessions: 2, capacity: 50, serving: { inRotation: true, reasons: [] } },
    });
  });

  it('recovers when Redis returns empty, with no restart: new sessions are placed and routed again', async () => {
    await redis.start();
    await eventually(
      async () => {
        const response = await rawInitialize('a');
        await response.body?.cancel();
        return response.status === 200;
      },
      15_000,
      'a new session accepted on a',
    );
    for (const via of IDS) {
      await eventually(async () => (await readyz(via)).status === 200, 15_000, `${via} accepting`);
    }
    // Every instance registered again in the empty Redis.
    await eventually(async () => (await liveInstances('b')) === 3, 15_000, 'three live again');

    // A session created after recovery through a is served by a's MCP server through b and c.
    const { client, sessionId } = await connect('a');
    expect(await whoami(client)).toBe(sessionId);
    expect((await owners('b'))[sessionId]).toBe('a');
    for (const via of ['b', 'c'] as const) {
      const joined = await connect(via, sessionId);
      expect(await whoami(joined.client)).toBe(sessionId);
    }
    // Sessions held through the outage were registered again by the resync, the fail-open ones too.
    const after = await owners('b');
    const byOwner: Record<string, number> = {};
    for (const owner of Object.values(after)) byOwner[owner] = (byOwner[owner] ?? 0) + 1;
    expect(byOwner.c).toBe(2);

    console.log(
      `Redis outage outcomes: local calls ok ${outcomes.localCallOk}, local calls failed ${outcomes.localCallFailed}, ` +
        `new sessions 503 STORE_UNAVAILABLE ${outcomes.newSession503}, other answers ${outcomes.newSessionOther}, ` +
        `new sessions placed locally with failOpen ${outcomes.newSessionFailOpen200}`,
    );
  });
});
