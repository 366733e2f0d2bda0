/**
 * `limits.tasksPerPrincipal` (issue 15, ADR 0015): a task counts against its creator from the
 * `CreateTaskResult` that passes the agent until a terminal `tasks/get`, a `tasks/cancel` or its
 * `ttlMs`. SDK v2 2.4.0 ships no Tasks implementation, so the upstream here is raw HTTP
 * answering as the Tasks extension (SEP-2663) does.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Budgets } from '../../../agent/routing/index.js';
import { startTestAgent, type TestAgent } from './harness.js';

let upstream: Server;
let upstreamUrl: string;
let taskCounter = 0;
const agents: TestAgent[] = [];

beforeAll(async () => {
  upstream = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => {
      body += d.toString();
    });
    req.on('end', () => {
      const { id } = JSON.parse(body || '{}') as { id?: number };
      const method = req.headers['mcp-method'];
      const result =
        method === 'tools/call'
          ? { resultType: 'task', taskId: `task-${++taskCounter}`, ttlMs: 600_000, status: 'working' }
          : method === 'tasks/get'
            ? { resultType: 'complete', taskId: req.headers['mcp-name'], status: 'completed' }
            : { resultType: 'complete' };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id, result }));
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop();
});
afterAll(async () => {
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

async function post(a: TestAgent, user: string, method: string, name: string) {
  const response = await fetch(`${a.url}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': method,
      'mcp-name': name,
      'x-user': user,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: {} }),
  });
  return {
    status: response.status,
    body: (await response.json()) as {
      result: { taskId: string; status: string };
      error: { data: Record<string, unknown> };
    },
  };
}

describe('tasksPerPrincipal on 2026 traffic', () => {
  it('counts a task from its CreateTaskResult to its terminal status', async () => {
    const a = await startTestAgent(
      { affinity: { type: 'mcp-streamable-http' }, limits: { tasksPerPrincipal: 1 } },
      upstreamUrl,
      ['--principal-header', 'x-user'],
      { logLevel: 'warn' },
    );
    agents.push(a);
    const created = await post(a, 'alice', 'tools/call', 'slow');
    expect(created.status).toBe(200);
    const taskId = created.body.result.taskId;

    const refused = await post(a, 'alice', 'tools/call', 'slow');
    expect(refused.status).toBe(429);
    expect(refused.body.error.data).toEqual({
      code: 'PRINCIPAL_LIMIT_REACHED',
      status: 429,
      retryAfterSeconds: 1,
      limit: 'tasksPerPrincipal',
      value: 1,
      principal: 'alice',
    });
    // Polling her task is not new work; bob has his own budget.
    expect((await post(a, 'bob', 'tools/call', 'slow')).status).toBe(200);
    expect((await post(a, 'alice', 'tasks/get', taskId)).body.result.status).toBe('completed');
    expect((await post(a, 'alice', 'tools/call', 'slow')).status).toBe(200);
  });
});

describe('Budgets', () => {
  it('releases a task at its ttlMs and counts a task id once', () => {
    const clock = { t: 0 };
    const budgets = new Budgets(
      { streamsPerInstance: 100, evictIdleAfterSeconds: 0, tasksPerPrincipal: 1 },
      { now: () => clock.t },
    );
    const alice = { principal: 'alice', tenant: undefined };
    budgets.taskStarted('t1', alice, 1000);
    budgets.taskStarted('t1', alice, 1000);
    expect(budgets.held('tasks', alice)).toBe(1);
    expect(budgets.mayStartTask(alice)?.code).toBe('PRINCIPAL_LIMIT_REACHED');
    clock.t = 999;
    expect(budgets.mayStartTask(alice)?.code).toBe('PRINCIPAL_LIMIT_REACHED');
    clock.t = 1000;
    expect(budgets.mayStartTask(alice)).toBeUndefined();
    expect(budgets.held('tasks', alice)).toBe(0);
    budgets.taskEnded('t1');
    expect(budgets.held('tasks', alice)).toBe(0);
  });
});
