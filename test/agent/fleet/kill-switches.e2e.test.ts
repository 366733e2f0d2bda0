/**
 * The fleet-wide kill switches for MCP 2026 tasks and listen streams (ADR 0025), end to end: two
 * agent processes with the run's Redis, each in front of its own reference Tasks server
 * (`test/helpers/mcp2026-server.ts`, SDK v2 underneath, a child process). A task lives in the
 * memory of the server that created it and a listen stream on the agent its client reached, so
 * an operator asking the other agent only succeeds if that agent finds the holder and has it act.
 *
 * - a task created through a, killed through b's admin API: a's server cancels it, the client's
 *   `tasks/get` shows it cancelled; killing it again says it already finished; an unknown id 404;
 * - a principal's tasks on both instances, killed with one call;
 * - a listen stream opened through a, listed and closed through b: the client's stream ends
 *   cleanly (its last chunk, no reset); a principal's streams closed with one call;
 * - the same through the operator CLI (`sessionfleet-agent admin …`), tables and `--json`, exit codes;
 * - hostile: every new admin route without (or with a wrong) admin token is 401.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentProcess, type Spawned, spawnListening, stopAll } from '../../helpers/http-agent-process.js';
import { MODERN_VERSION, TASKS_EXTENSION } from '../../helpers/mcp2026-server.js';
import { run } from '../../helpers/run.js';
import { spawnMembers, waitFor } from './helpers.js';

const IDS = ['a', 'b'] as const;
type Id = (typeof IDS)[number];
const ADMIN_TOKEN = 'admin-token-kill-switches-6d2e';
let agents: Record<Id, AgentProcess>;
const servers = {} as Record<Id, Spawned & { url: string }>;

const META = {
  'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
  'io.modelcontextprotocol/clientInfo': { name: 'kill-switch-test', version: '1.0.0' },
  'io.modelcontextprotocol/clientCapabilities': { extensions: { [TASKS_EXTENSION]: {} } },
};

let nextId = 1;

async function call(agent: Id, user: string, method: string, params: Record<string, unknown>, name: string) {
  const response = await fetch(`${agents[agent].url}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN_VERSION,
      'mcp-method': method,
      'mcp-name': name,
      'x-user': user,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params: { ...params, _meta: META } }),
  });
  return (await response.json()) as { result?: Record<string, unknown>; error?: unknown };
}

async function startTask(agent: Id, user: string): Promise<string> {
  const body = await call(agent, user, 'tools/call', { name: 'start_task', arguments: { hold: true } }, 'start_task');
  return (body.result as { taskId: string }).taskId;
}

const taskStatus = async (agent: Id, user: string, taskId: string) =>
  ((await call(agent, user, 'tasks/get', { taskId }, taskId)).result as { status: string }).status;

/** `token` null: no Authorization header at all. */
async function admin(agent: Id, method: string, path: string, token: string | null = ADMIN_TOKEN) {
  const response = await fetch(`${agents[agent].adminUrl}${path}`, {
    method,
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** An open `subscriptions/listen` of `user` through `agent`, read as it arrives. */
async function listen(agent: Id, user: string) {
  const response = await fetch(`${agents[agent].url}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN_VERSION,
      'mcp-method': 'subscriptions/listen',
      'x-user': user,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: nextId++,
      method: 'subscriptions/listen',
      params: { notifications: { toolsListChanged: true }, _meta: META },
    }),
  });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const reader = response.body!.getReader();
  let text = '';
  // Resolves with what the stream carried once it ends; rejects if it is cut rather than ended.
  const ended = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return text;
      text += Buffer.from(value).toString('utf8');
    }
  })();
  ended.catch(() => {});
  return { ended, received: () => text };
}

/** The streams `agent` lists for `principal`, fleet-wide. */
async function streamsOf(agent: Id, principal: string) {
  const { status, body } = await admin(agent, 'GET', `/admin/fleet/streams?principal=${principal}`);
  expect(status).toBe(200);
  return body.streams as Array<{ id: string; kind: string; instanceId: string; principal: string }>;
}

function cli(args: readonly string[]) {
  return run(process.execPath, ['--import', 'tsx', 'agent/cli.ts', 'admin', ...args], {
    env: { SESSIONFLEET_ADMIN_URL: '', SESSIONFLEET_ADMIN_TOKEN: '' },
    timeoutMs: 30_000,
  });
}
const via = (id: Id) => ['--admin-url', agents[id].adminUrl, '--admin-token', ADMIN_TOKEN];

beforeAll(async () => {
  for (const id of IDS) servers[id] = await spawnListening('test/helpers/mcp2026-server.ts', [`server-${id}`, '60000']);
  ({ agents } = await spawnMembers({
    ids: IDS,
    policy: { affinity: { type: 'mcp-streamable-http' }, maxInstances: 2 },
    upstream: (id) => servers[id].url,
    redisUrl: inject('redisUrl'),
    adminToken: ADMIN_TOKEN,
    extraArgs: ['--principal-header', 'x-user'],
  }));
}, 60_000);

afterAll(async () => {
  // The agents and the reference servers alike.
  await stopAll();
});

describe('fleet-wide task kill switch', () => {
  it('a task created through a is cancelled through b: its owner cancels it upstream, the client sees it cancelled', async () => {
    const taskId = await startTask('a', 'alice');
    expect(await taskStatus('b', 'alice', taskId)).toBe('working');
    const killed = await admin('b', 'DELETE', `/admin/fleet/tasks/${taskId}`);
    expect(killed).toEqual({ status: 200, body: { taskId, owner: 'a', cancelled: true, status: 'cancelled' } });
    expect(await taskStatus('a', 'alice', taskId)).toBe('cancelled');
    expect(await taskStatus('b', 'alice', taskId)).toBe('cancelled');

    // Again: it finished already, said so plainly.
    expect(await admin('a', 'DELETE', `/admin/fleet/tasks/${taskId}`)).toEqual({
      status: 409,
      body: {
        error: {
          code: 'TASK_FINISHED',
          message: `task "${taskId}" has already cancelled: nothing to cancel`,
          status: 409,
          taskId,
          owner: 'a',
          taskStatus: 'cancelled',
        },
      },
    });
    expect(await admin('b', 'DELETE', '/admin/fleet/tasks/no-such-task-41c2')).toEqual({
      status: 404,
      body: {
        error: {
          code: 'TASK_NOT_FOUND',
          message:
            'no live task "no-such-task-41c2" in the fleet (never created, expired, or its instance is gone): list the live tasks with GET /admin/fleet/tasks',
          status: 404,
          taskId: 'no-such-task-41c2',
        },
      },
    });
  });

  it("a principal's tasks on both instances end with one call through either agent; others' stay", async () => {
    const carols = [await startTask('a', 'carol'), await startTask('b', 'carol')];
    const daves = await startTask('a', 'dave');
    const { status, body } = await admin('b', 'DELETE', '/admin/fleet/tasks?principal=carol');
    expect(status).toBe(200);
    expect({ ...body, cancelled: (body.cancelled as string[]).sort() }).toEqual({
      principal: 'carol',
      tenant: null,
      cancelled: [...carols].sort(),
      finished: [],
      unknown: [],
      failed: [],
      unanswered: [],
      truncated: false,
    });
    for (const taskId of carols) expect(await taskStatus('a', 'carol', taskId)).toBe('cancelled');
    expect(await taskStatus('b', 'dave', daves)).toBe('working');
    const missing = await admin('a', 'DELETE', '/admin/fleet/tasks');
    expect(missing.status).toBe(400);
    expect((missing.body.error as { message: string }).message).toBe(
      'principal is required: name whose tasks or streams to end (or end one by its id): fix the request',
    );
  });
});

describe('admin kill for listen streams', () => {
  it('a listen opened through a is listed and closed through b; the client sees its stream end cleanly', async () => {
    const stream = await listen('a', 'erin');
    const other = await listen('a', 'frank');
    const [listed] = await waitFor('erin listed', async () => {
      const found = await streamsOf('b', 'erin');
      return found.length === 1 ? found : undefined;
    });
    expect(listed).toMatchObject({ kind: 'listen', instanceId: 'a', principal: 'erin', tenant: null, sessionId: null });
    expect(listed!.id).toMatch(/^st-[A-Za-z0-9_-]{12}$/);

    const closed = await admin('b', 'DELETE', `/admin/fleet/streams/${listed!.id}`);
    expect(closed.status).toBe(200);
    expect(closed.body).toEqual({
      closed: [expect.objectContaining({ id: listed!.id, principal: 'erin' })],
      unanswered: [],
    });
    // Ended, not cut: the reader finishes (an aborted socket would reject it).
    await expect(stream.ended).resolves.toBeTypeOf('string');
    expect(await streamsOf('a', 'erin')).toEqual([]);
    // Frank's stream is untouched.
    expect(await streamsOf('b', 'frank')).toHaveLength(1);

    expect(await admin('a', 'DELETE', `/admin/fleet/streams/${listed!.id}`)).toEqual({
      status: 404,
      body: {
        error: {
          code: 'STREAM_NOT_FOUND',
          message: `no open stream "${listed!.id}" in the fleet: list the open streams with GET /admin/fleet/streams`,
          status: 404,
          streamId: listed!.id,
          unanswered: [],
        },
      },
    });

    // All of a principal's streams, wherever they are open.
    const another = await listen('b', 'frank');
    await waitFor('frank on both', async () => (await streamsOf('a', 'frank')).length === 2 || undefined);
    const all = await admin('a', 'DELETE', '/admin/fleet/streams?principal=frank');
    expect(all.status).toBe(200);
    expect((all.body.closed as Array<{ instanceId: string }>).map((s) => s.instanceId).sort()).toEqual(['a', 'b']);
    await expect(other.ended).resolves.toBeTypeOf('string');
    await expect(another.ended).resolves.toBeTypeOf('string');
  });
});

describe('the operator CLI', () => {
  it('tasks, kill-task, streams and kill-stream: tables, --json and the documented exit codes', async () => {
    const taskId = await startTask('b', 'gina');
    const tasks = await cli(['tasks', '--principal', 'gina', ...via('a')]);
    expect(tasks.stderr).toBe('');
    expect(tasks.code).toBe(0);
    expect(tasks.stdout.split('\n')[0]).toMatch(/^TASK\s+KIND\s+OWNER\s+PRINCIPAL\s+TENANT\s+EXPIRES$/);
    expect(tasks.stdout).toMatch(new RegExp(`^${taskId}\\s+task\\s+b\\s+gina\\s+-\\s`, 'm'));

    const killed = await cli(['kill-task', taskId, ...via('a')]);
    expect(killed).toMatchObject({ code: 0, stderr: '', stdout: `cancelled ${taskId} on b (now cancelled)\n` });
    const again = await cli(['kill-task', taskId, ...via('a')]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(
      `sessionfleet-agent admin: the agent refused: TASK_FINISHED: task "${taskId}" has already cancelled: nothing to cancel\n`,
    );

    const stream = await listen('b', 'gina');
    await waitFor('gina listed', async () => (await streamsOf('a', 'gina')).length === 1 || undefined);
    const json = await cli(['streams', '--principal', 'gina', '--json', ...via('a')]);
    expect(json.code).toBe(0);
    const listed = (JSON.parse(json.stdout) as { streams: Array<{ id: string; instanceId: string }> }).streams[0]!;
    expect(listed.instanceId).toBe('b');
    const table = await cli(['streams', ...via('a')]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`^${listed.id}\\s+listen\\s+b\\s+gina\\s+-\\s`, 'm'));
    const closed = await cli(['kill-stream', '--principal', 'gina', '--json', ...via('a')]);
    expect(closed.code).toBe(0);
    expect(JSON.parse(closed.stdout)).toMatchObject({ principal: 'gina', closed: [{ id: listed.id }], unanswered: [] });
    await expect(stream.ended).resolves.toBeTypeOf('string');
    const gone = await cli(['kill-stream', listed.id, ...via('a')]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('STREAM_NOT_FOUND');

    for (const [args, message] of [
      [['kill-task'], 'admin kill-task takes one id, or --principal (not both)'],
      [['kill-stream', 'x', '--principal', 'p'], 'admin kill-stream takes one id, or --principal (not both)'],
      [['kill-stream', 'x', '--tenant', 't'], '--tenant goes with --principal, not with an id'],
      [['streams', 'x'], 'admin streams takes no arguments, only filters'],
      [['streams', '--limit', '3'], "--limit is an option of 'admin sessions', 'admin tasks', not of 'admin streams'"],
    ] as const) {
      const result = await cli([...args, ...via('a')]);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toContain(message);
    }
  }, 120_000);
});

describe('hostile: the new admin routes need the admin token', () => {
  it('answers 401 without the token and with a wrong one, and acts on nothing', async () => {
    await listen('a', 'henry');
    const taskId = await startTask('a', 'henry');
    await waitFor('henry listed', async () => (await streamsOf('a', 'henry')).length === 1 || undefined);
    const [listed] = await streamsOf('b', 'henry');
    for (const [method, path] of [
      ['DELETE', `/admin/fleet/tasks/${taskId}`],
      ['DELETE', '/admin/fleet/tasks?principal=henry'],
      ['GET', '/admin/fleet/streams'],
      ['DELETE', `/admin/fleet/streams/${listed!.id}`],
      ['DELETE', '/admin/fleet/streams?principal=henry'],
    ] as const) {
      for (const token of [null, 'not-the-admin-token']) {
        const answer = await admin('b', method, path, token);
        expect(answer, `${method} ${path} ${token ?? 'no token'}`).toEqual({
          status: 401,
          body: { error: { code: 'UNAUTHENTICATED', message: 'send Authorization: Bearer <admin token>' } },
        });
      }
    }
    expect(await taskStatus('a', 'henry', taskId)).toBe('working');
    expect(await streamsOf('b', 'henry')).toHaveLength(1);
  });
});
