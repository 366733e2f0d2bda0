/**
 * The task and stream kill switches of one agent without `--redis` (ADR 0025): the same admin
 * routes as in a fleet, answered by this instance alone (the local peer calls), against the
 * reference Tasks server in process. The fleet-wide path is `test/agent/fleet/kill-switches.e2e.test.ts`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Mcp2026Server,
  MODERN_VERSION,
  startMcp2026Server,
  TASKS_EXTENSION,
} from '../../helpers/mcp2026-server.js';
import { startTestAgent, type TestAgent, until } from './harness.js';

const ADMIN_TOKEN = 'admin-token-kill-local-0c7d';
const META = {
  'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
  'io.modelcontextprotocol/clientInfo': { name: 'kill-local', version: '1.0.0' },
  'io.modelcontextprotocol/clientCapabilities': { extensions: { [TASKS_EXTENSION]: {} } },
};

let server: Mcp2026Server;
let agent: TestAgent;
let nextId = 1;

beforeAll(async () => {
  server = await startMcp2026Server({ name: 'local' });
  agent = await startTestAgent(
    { affinity: { type: 'mcp-streamable-http' }, limits: { tasksPerPrincipal: 5 } },
    server.url,
    ['--principal-header', 'x-user', '--admin-token', ADMIN_TOKEN],
    { logLevel: 'warn' },
  );
});

afterAll(async () => {
  await agent?.stop();
  await server?.close();
});

async function call(user: string, method: string, params: Record<string, unknown>, name: string, extra = {}) {
  return fetch(`${agent.url}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN_VERSION,
      'mcp-method': method,
      ...(name ? { 'mcp-name': name } : {}),
      'x-user': user,
      ...extra,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params: { ...params, _meta: META } }),
  });
}

async function admin(method: string, path: string) {
  const response = await fetch(`${agent.adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('kill switches on a single agent (no Redis)', () => {
  it('cancels a live task, says a finished one is finished, and frees its creator task budget', async () => {
    const started = await call('alice', 'tools/call', { name: 'start_task', arguments: { hold: true } }, 'start_task');
    const taskId = ((await started.json()) as { result: { taskId: string } }).result.taskId;
    expect(agent.front.budgets.held('tasks', { principal: 'alice', tenant: undefined })).toBe(1);

    expect(await admin('DELETE', `/admin/fleet/tasks/${taskId}`)).toEqual({
      status: 200,
      body: { taskId, owner: 'test', cancelled: true, status: 'cancelled' },
    });
    expect(agent.front.budgets.held('tasks', { principal: 'alice', tenant: undefined })).toBe(0);
    const again = await admin('DELETE', `/admin/fleet/tasks/${taskId}`);
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ code: 'TASK_FINISHED', taskStatus: 'cancelled', owner: 'test' });
    // Known to the agent's registry, forgotten by the server (a restart): unknown, not "cancelled".
    const other = await call('alice', 'tools/call', { name: 'start_task', arguments: { hold: true } }, 'start_task');
    const forgotten = ((await other.json()) as { result: { taskId: string } }).result.taskId;
    expect(server.forgetTask(forgotten)).toBe(true);
    const unknown = await admin('DELETE', `/admin/fleet/tasks/${forgotten}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: 'TASK_NOT_FOUND', taskId: forgotten, owner: 'test' });
  });

  it("lists and closes a principal's listen streams, each ending cleanly; no name closes nothing", async () => {
    // The reader's end, wrapped so that awaiting `open` does not wait for it.
    const open = async (user: string) => {
      const response = await call(user, 'subscriptions/listen', { notifications: { toolsListChanged: true } }, '');
      expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const reader = response.body!.getReader();
      const ended = (async () => {
        for (;;) if ((await reader.read()).done) return 'ended';
      })();
      return { ended };
    };
    const first = await open('bob');
    const second = await open('bob');
    const other = await open('carol');
    await until(() => agent.front.stats().openStreams === 3, 10_000, 'three open streams');
    const listed = await admin('GET', '/admin/fleet/streams?principal=bob');
    expect(listed.status).toBe(200);
    expect(listed.body).toMatchObject({ instanceId: 'test', count: 2, unanswered: [] });
    const refused = await admin('DELETE', '/admin/fleet/streams');
    expect(refused.status).toBe(400);
    const closed = await admin('DELETE', '/admin/fleet/streams?principal=bob');
    expect((closed.body.closed as unknown[]).length).toBe(2);
    expect(await first.ended).toBe('ended');
    expect(await second.ended).toBe('ended');
    await until(() => agent.front.stats().openStreams === 1, 10_000, "carol's stream alone");
    const [carols] = (await admin('GET', '/admin/fleet/streams')).body.streams as Array<{ id: string }>;
    expect((await admin('DELETE', `/admin/fleet/streams/${carols!.id}`)).status).toBe(200);
    expect(await other.ended).toBe('ended');
    expect(agent.front.stats()).toMatchObject({ openStreams: 0, streamPlaces: 0 });
  });
});
