/**
 * MCP 2026-07-28 tasks in a fleet (issue 15): two agents with the run's Redis, each in front of its
 * own reference Tasks server (`test/helpers/mcp2026-server.ts`, a child process, SDK v2 2.4.0
 * underneath). A task lives in the memory of the server that created it, so a poll that reaches
 * the other server fails — what a round-robin balancer does for half the polls.
 *
 * - a task created through agent a is found through agent b on every poll (6 of 6), and cancelled;
 * - bob cannot read, update or cancel alice's task: he gets exactly the answer for an id that
 *   never existed (no oracle), through either agent;
 * - the owner (agent and server) killed: once its lease is gone, the task gets the unknown-task
 *   answer through the surviving agent.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type AgentProcess,
  type Spawned,
  spawnAgent,
  spawnListening,
  stopAll,
} from '../../helpers/http-agent-process.js';
import { MODERN_VERSION, TASKS_EXTENSION } from '../../helpers/mcp2026-server.js';
import { freePort } from '../../helpers/redis-server.js';
import { inspector, lapseLease, uniqueFleet } from './helpers.js';

const IDS = ['a', 'b'] as const;
const ADMIN_TOKEN = 'admin-token-mcp2026-tasks-19c4';
type Id = (typeof IDS)[number];
const fleet = uniqueFleet();
const agents = {} as Record<Id, AgentProcess>;
const servers = {} as Record<Id, Spawned & { url: string }>;

const META = {
  'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
  'io.modelcontextprotocol/clientInfo': { name: 'tasks-test', version: '1.0.0' },
  'io.modelcontextprotocol/clientCapabilities': { extensions: { [TASKS_EXTENSION]: {} } },
};

let nextId = 1;

/** One modern JSON-RPC request, with the routing headers a 2026 client sends. */
async function call(
  agent: Id,
  user: string,
  method: string,
  params: Record<string, unknown>,
  name: string,
  extra: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const id = nextId++;
  const response = await fetch(`${agents[agent].url}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN_VERSION,
      'mcp-method': method,
      'mcp-name': name,
      'x-user': user,
      ...extra,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, _meta: META } }),
  });
  const body = (await response.json()) as Record<string, unknown>;
  // Compared across requests: the id is the only field that must differ.
  expect(body.id).toBe(id);
  delete body.id;
  return { status: response.status, body };
}

async function startTask(agent: Id, user: string, args: Record<string, unknown> = {}): Promise<string> {
  const { status, body } = await call(agent, user, 'tools/call', { name: 'start_task', arguments: args }, 'start_task');
  expect(status).toBe(200);
  const result = body.result as { resultType: string; taskId: string };
  expect(result.resultType).toBe('task');
  return result.taskId;
}

const tasks = (agent: Id, user: string, method: string, taskId: string) =>
  call(agent, user, method, method === 'tasks/update' ? { taskId, inputResponses: {} } : { taskId }, taskId);

const UNKNOWN = { jsonrpc: '2.0', error: { code: -32602, message: 'Failed to retrieve task: Task not found' } };

beforeAll(async () => {
  for (const id of IDS) {
    servers[id] = await spawnListening('test/helpers/mcp2026-server.ts', [`server-${id}`, '60000']);
    const port = await freePort();
    agents[id] = await spawnAgent({
      policy: { affinity: { type: 'mcp-streamable-http' }, maxInstances: 2, handleHeader: 'Mcp-Param-Workspace' },
      upstream: servers[id].url,
      args: [
        ['--listen', `127.0.0.1:${port}`],
        ['--advertise', `http://127.0.0.1:${port}`],
        ['--instance-id', id],
        ['--redis', inject('redisUrl')],
        ['--fleet', fleet],
        ['--principal-header', 'x-user'],
        ['--admin-token', ADMIN_TOKEN],
      ].flat(),
    });
  }
}, 60_000);

afterAll(async () => {
  await stopAll();
});

describe('MCP 2026 tasks in a two-agent fleet', () => {
  it('finds a task created through agent a on every poll through agent b (6 of 6), and cancels it there', async () => {
    const taskId = await startTask('a', 'alice');
    const found: string[] = [];
    for (let i = 0; i < 6; i++) {
      const { status, body } = await tasks('b', 'alice', 'tasks/get', taskId);
      expect(status).toBe(200);
      expect(body.error).toBeUndefined();
      const result = body.result as { taskId: string; status: string };
      expect(result.taskId).toBe(taskId);
      found.push(result.status);
    }
    expect(found).toHaveLength(6);
    const cancelled = await tasks('b', 'alice', 'tasks/cancel', taskId);
    expect(cancelled).toEqual({ status: 200, body: { jsonrpc: '2.0', result: { resultType: 'complete' } } });

    // What the metrics say: b forwarded the 7 calls, a served them and created the task.
    const metric = async (agent: Id, line: string) => {
      const text = await (await fetch(`${agents[agent].adminUrl}/metrics`)).text();
      return Number(
        text
          .split('\n')
          .find((l) => l.startsWith(line))
          ?.split(' ')
          .at(-1) ?? 0,
      );
    };
    expect(
      await metric('b', 'sessionfleet_affinity_key_decisions_total{kind="task",decision="forwarded"'),
    ).toBeGreaterThanOrEqual(7);
    expect(
      await metric('a', 'sessionfleet_affinity_key_decisions_total{kind="task",decision="local"'),
    ).toBeGreaterThanOrEqual(7);
    expect(
      await metric('a', 'sessionfleet_mcp_requests_total{method="tools/call",name="start_task",result="task"'),
    ).toBeGreaterThanOrEqual(1);
    expect(
      await metric('a', 'sessionfleet_mcp_requests_total{method="tasks/get",name="",result="complete"'),
    ).toBeGreaterThanOrEqual(6);
  });

  it('learns a task answered over SSE before the client can read it, and polls it through agent b', async () => {
    const response = await fetch(`${agents.a.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': MODERN_VERSION,
        'mcp-method': 'tools/call',
        'mcp-name': 'start_task',
        'x-user': 'alice',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 'sse-1',
        method: 'tools/call',
        params: { name: 'start_task', arguments: { stream: true }, _meta: META },
      }),
    });
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await response.text();
    const result = text
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)) as { id?: unknown; result?: { taskId: string } })
      .find((m) => m.id === 'sse-1');
    const taskId = result!.result!.taskId;
    for (let i = 0; i < 3; i++) {
      const { body } = await tasks('b', 'alice', 'tasks/get', taskId);
      expect((body.result as { taskId: string }).taskId).toBe(taskId);
    }
  });

  it("answers bob's calls on alice's task exactly as for a task that never existed, through either agent", async () => {
    const taskId = await startTask('a', 'alice', { hold: true });
    const never = await tasks('b', 'bob', 'tasks/get', 'no-such-task-7f3a');
    expect(never).toEqual({ status: 200, body: UNKNOWN });
    for (const agent of IDS) {
      for (const method of ['tasks/get', 'tasks/update', 'tasks/cancel']) {
        expect(await tasks(agent, 'bob', method, taskId)).toEqual(never);
      }
    }
    // The inventory, asked of either agent, lists it under alice, held by a; bob has none.
    const inventory = async (agent: Id, principal: string) => {
      const response = await fetch(`${agents[agent].adminUrl}/admin/fleet/tasks?principal=${principal}`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect(response.status).toBe(200);
      return ((await response.json()) as { tasks: Array<Record<string, unknown>> }).tasks;
    };
    expect(await inventory('b', 'alice')).toContainEqual(
      expect.objectContaining({ kind: 'task', id: taskId, owner: 'a', principal: 'alice', tenant: null }),
    );
    expect(await inventory('a', 'bob')).toEqual([]);
    // Alice still has it: bob's cancel did not reach it.
    const { body } = await tasks('b', 'alice', 'tasks/get', taskId);
    expect((body.result as { status: string }).status).toBe('working');
  });

  it("the kill switch cancels a principal's tasks upstream on the instance that holds them", async () => {
    const carols = [await startTask('a', 'carol', { hold: true }), await startTask('a', 'carol', { hold: true })];
    const daves = await startTask('a', 'dave', { hold: true });
    const response = await fetch(`${agents.a.adminUrl}/admin/tasks?principal=carol`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(response.status).toBe(200);
    const result = (await response.json()) as { cancelled: string[]; failed: string[] };
    expect(result.cancelled.sort()).toEqual([...carols].sort());
    expect(result.failed).toEqual([]);
    for (const taskId of carols) {
      const { body } = await tasks('b', 'carol', 'tasks/get', taskId);
      expect((body.result as { status: string }).status).toBe('cancelled');
    }
    const { body } = await tasks('b', 'dave', 'tasks/get', daves);
    expect((body.result as { status: string }).status).toBe('working');
  });

  it('routes a handle the policy names to the instance that first served it, for its first user only', async () => {
    const whoami = (agent: Id, user: string) =>
      call(agent, user, 'tools/call', { name: 'whoami', arguments: {} }, 'whoami', {
        'mcp-param-workspace': 'ws-42',
      });
    const served = async (agent: Id, user: string) =>
      ((await whoami(agent, user)).body.result as { content: Array<{ text: string }> }).content[0]!.text;
    expect(await served('a', 'alice')).toBe('server-a');
    for (let i = 0; i < 4; i++) expect(await served('b', 'alice')).toBe('server-a');
    const refused = await whoami('b', 'bob');
    expect(refused.body.error).toEqual({ code: -32602, message: 'Invalid params: unknown handle' });
  });

  it('answers the unknown-task answer once the owner is gone', async () => {
    const taskId = await startTask('a', 'alice');
    expect((await tasks('b', 'alice', 'tasks/get', taskId)).body.error).toBeUndefined();
    await agents.a.stop('SIGKILL');
    await servers.a.stop('SIGKILL');
    // Its lease would run out on its own; lapsing it now keeps the test short.
    const redis = await inspector(inject('redisUrl'));
    try {
      await lapseLease(redis, fleet, 'a');
    } finally {
      redis.disconnect();
    }
    expect(await tasks('b', 'alice', 'tasks/get', taskId)).toEqual({ status: 200, body: UNKNOWN });
  });
});
