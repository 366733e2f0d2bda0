/**
 * Tasks (SEP-2663, extension `io.modelcontextprotocol/tasks`), the one implementation of the tests:
 * SDK v2 2.4.0 ships none, so this is a small one of ours. A task lives in the memory of the
 * instance that created it, as in most real servers — which is why the spec asks load balancers to
 * route `tasks/*` by `Mcp-Name` to that instance, and what the fleet set-ups exercise.
 *
 * - `TaskStore`: the tasks of one process, their life and the answers to `tasks/get|update|cancel`;
 *   the conformance reference server and `test/helpers/mcp2026-server.ts` both keep theirs in one.
 * - `registerTasks`: the extension on an `McpServer` (SDK v2), and the fixtures the suite's tasks
 *   scenarios call by name: `greet` (never a task), `slow_compute`, `failing_job` (a tool error:
 *   completed with `isError`), `protocol_error_job` (failed, with an inlined JSON-RPC error). A
 *   task is created only for a request whose client capabilities declare the extension; otherwise
 *   the tool runs synchronously.
 */
import { randomUUID } from 'node:crypto';
import {
  acceptedContent,
  type CallToolResult,
  CLIENT_CAPABILITIES_META_KEY,
  type InputRequests,
  type InputRequiredResult,
  inputRequired,
  type McpServer,
  MissingRequiredClientCapabilityError,
  ProtocolError,
  ProtocolErrorCode,
  type ServerContext,
} from '@modelcontextprotocol/server';
import * as z from 'zod';

export const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';
/** A task's `delayMs` that keeps it working until cancelled (a test of cancellation must not race its end). */
export const HELD = Number.POSITIVE_INFINITY;
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

interface TaskRecord {
  readonly taskId: string;
  status: 'working' | 'input_required' | 'completed' | 'failed' | 'cancelled';
  readonly createdAt: string;
  lastUpdatedAt: string;
  result?: CallToolResult;
  error?: { code: number; message: string };
  timer?: NodeJS.Timeout;
  /** Input the task waits for (SEP-2322 requests, keyed by id), and what the client answered. */
  pending: Record<string, InputRequest>;
  readonly answers: Record<string, unknown>;
  readonly delayMs: number;
  readonly work: (answers: Record<string, unknown>) => CallToolResult;
}

type InputRequest = InputRequests[string];

export interface TaskStoreOptions {
  /** How long a task is kept (and the `ttlMs` it reports). @default 300000 */
  readonly ttlMs?: number;
  /** The `pollIntervalMs` the tasks suggest. @default 200 */
  readonly pollIntervalMs?: number;
}

/** The tasks of one server process, shared by the per-request server instances it creates. */
export class TaskStore {
  private readonly tasks = new Map<string, TaskRecord>();
  private readonly ttlMs: number;
  private readonly pollIntervalMs: number;

  constructor(options: TaskStoreOptions = {}) {
    this.ttlMs = options.ttlMs ?? 300_000;
    this.pollIntervalMs = options.pollIntervalMs ?? 200;
  }

  /** Forgets a task as a server restart would: it is unknown from then on. */
  forget(taskId: string): boolean {
    return this.tasks.delete(taskId);
  }

  /**
   * Starts `work` as a task, after `delayMs` (`HELD`: never); with `inputRequests` the task first
   * waits in `input_required` until `tasks/update` has answered every one. What `work` returns (or throws)
   * settles the task unless it was cancelled first.
   */
  create(
    delayMs: number,
    work: (answers: Record<string, unknown>) => CallToolResult,
    inputRequests: Record<string, InputRequest> = {},
  ): Record<string, unknown> {
    const now = new Date().toISOString();
    const waiting = Object.keys(inputRequests).length > 0;
    const task: TaskRecord = {
      taskId: randomUUID(),
      status: waiting ? 'input_required' : 'working',
      createdAt: now,
      lastUpdatedAt: now,
      pending: { ...inputRequests },
      answers: {},
      delayMs,
      work,
    };
    this.tasks.set(task.taskId, task);
    if (!waiting) this.run(task);
    setTimeout(() => this.tasks.delete(task.taskId), this.ttlMs).unref();
    return { resultType: 'task', ...this.info(task) };
  }

  private run(task: TaskRecord): void {
    if (task.delayMs === HELD) return;
    task.timer = setTimeout(() => {
      if (task.status !== 'working') return;
      try {
        task.result = task.work(task.answers);
        task.status = 'completed';
      } catch (error) {
        task.error = { code: ProtocolErrorCode.InternalError, message: (error as Error).message };
        task.status = 'failed';
      }
      task.lastUpdatedAt = new Date().toISOString();
    }, task.delayMs);
    task.timer.unref();
  }

  private info(task: TaskRecord): Record<string, unknown> {
    return {
      taskId: task.taskId,
      status: task.status,
      createdAt: task.createdAt,
      lastUpdatedAt: task.lastUpdatedAt,
      ttlMs: this.ttlMs,
      pollIntervalMs: this.pollIntervalMs,
    };
  }

  private find(taskId: string): TaskRecord {
    const task = this.tasks.get(taskId);
    // The spec's answer for an invalid or nonexistent id, word for word: the agent gives the same
    // one for a task of another principal, so the two cannot be told apart.
    if (!task) throw new ProtocolError(ProtocolErrorCode.InvalidParams, 'Failed to retrieve task: Task not found');
    return task;
  }

  get(taskId: string): Record<string, unknown> {
    const task = this.find(taskId);
    return {
      resultType: 'complete',
      ...this.info(task),
      ...(task.status === 'input_required' ? { inputRequests: task.pending } : {}),
      ...(task.result ? { result: task.result } : {}),
      ...(task.error ? { error: task.error } : {}),
    };
  }

  /** Answers some or all of what an `input_required` task waits for; the last answer resumes it. */
  update(taskId: string, responses: Record<string, unknown>): Record<string, unknown> {
    const task = this.find(taskId);
    if (task.status === 'input_required') {
      for (const [key, response] of Object.entries(responses)) {
        if (!(key in task.pending)) continue;
        task.answers[key] = response;
        delete task.pending[key];
      }
      task.lastUpdatedAt = new Date().toISOString();
      if (Object.keys(task.pending).length === 0) {
        task.status = 'working';
        this.run(task);
      }
    }
    return { resultType: 'complete' };
  }

  cancel(taskId: string): Record<string, unknown> {
    const task = this.find(taskId);
    if (!TERMINAL.has(task.status)) {
      clearTimeout(task.timer);
      task.status = 'cancelled';
      task.lastUpdatedAt = new Date().toISOString();
    }
    return { resultType: 'complete' };
  }
}

function declaresTasks(ctx: ServerContext): boolean {
  const envelope = ctx.mcpReq.envelope as Record<string, { extensions?: Record<string, unknown> } | undefined>;
  return envelope?.[CLIENT_CAPABILITIES_META_KEY]?.extensions?.[TASKS_EXTENSION] !== undefined;
}

function requireTasks(ctx: ServerContext): void {
  if (!declaresTasks(ctx)) {
    throw new MissingRequiredClientCapabilityError({
      requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } },
    } as ConstructorParameters<typeof MissingRequiredClientCapabilityError>[0]);
  }
}

export function registerTasks(server: McpServer, tasks: TaskStore): void {
  server.server.registerCapabilities({ extensions: { [TASKS_EXTENSION]: {} } } as Parameters<
    typeof server.server.registerCapabilities
  >[0]);
  const text = (value: string): CallToolResult => ({ content: [{ type: 'text', text: value }] });
  // A task when the client declared the extension, else the same work done before answering.
  const maybeTask = async (ctx: ServerContext, delayMs: number, work: () => CallToolResult) => {
    if (declaresTasks(ctx)) return tasks.create(delayMs, work) as unknown as CallToolResult;
    await new Promise((resolve) => setTimeout(resolve, Math.min(delayMs, 2_000)));
    return work();
  };
  server.registerTool(
    'greet',
    { description: 'Greets, synchronously', inputSchema: z.object({ name: z.string() }) },
    async (args) => text(`Hello, ${args.name}!`),
  );
  server.registerTool(
    'slow_compute',
    {
      description: 'Sleeps `seconds`, then answers; a task for clients of the tasks extension',
      inputSchema: z.object({ seconds: z.number().min(0), label: z.string().optional() }),
    },
    async (args, ctx) =>
      maybeTask(ctx, args.seconds * 1000, () => text(`computed ${args.label ?? ''} after ${args.seconds} s`)),
  );
  // Task support "required": without the extension the client gets -32021, not a synchronous run.
  const required = { execution: { taskSupport: 'required' } } as Record<string, unknown>;
  const asTask = (created: Record<string, unknown>) => created as unknown as CallToolResult;
  server.registerTool(
    'failing_job',
    { description: 'A tool error after ~1 s', inputSchema: z.object({}), ...required },
    async (_a, ctx) => {
      requireTasks(ctx);
      return asTask(tasks.create(1000, () => ({ ...text('the job failed'), isError: true })));
    },
  );
  const confirm = (message: string) =>
    inputRequired.elicit({
      message,
      requestedSchema: { type: 'object', properties: { confirm: { type: 'boolean' } }, required: ['confirm'] },
    });
  server.registerTool(
    'confirm_delete',
    { description: 'A task that asks for confirmation first', inputSchema: z.object({ filename: z.string() }) },
    async (args, ctx) => {
      requireTasks(ctx);
      const done = (answers: Record<string, unknown>) =>
        text(`${acceptedContent(answers, 'confirm') ? 'deleted' : 'kept'} ${args.filename}`);
      return asTask(tasks.create(100, done, { confirm: confirm(`Delete ${args.filename}?`) }));
    },
  );
  server.registerTool(
    'multi_input',
    { description: 'A task that asks two questions at once', inputSchema: z.object({}) },
    async (_a, ctx) => {
      requireTasks(ctx);
      const asks = { first: confirm('First question?'), second: confirm('Second question?') };
      return asTask(tasks.create(100, (answers) => text(`answered ${Object.keys(answers).join(', ')}`), asks));
    },
  );
  server.registerTool(
    'test_tool_with_task',
    { description: 'Asks for a name (multi-round), then goes on as a task', inputSchema: z.object({}), ...required },
    async (_a, ctx): Promise<CallToolResult | InputRequiredResult> => {
      requireTasks(ctx);
      const name = acceptedContent<{ name: string }>(ctx.mcpReq.inputResponses, 'user_name')?.name;
      if (typeof name === 'string') return asTask(tasks.create(200, () => text(`Hello, ${name}, from a task`)));
      return inputRequired({
        inputRequests: {
          user_name: inputRequired.elicit({
            message: 'What is your name?',
            requestedSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
          }),
        },
      });
    },
  );
  server.registerTool(
    'protocol_error_job',
    { description: 'A protocol-level failure', inputSchema: z.object({}) },
    async (_a, ctx) =>
      maybeTask(ctx, 200, () => {
        throw new Error('protocol_error_job failed inside the server');
      }),
  );
  const taskParams = { params: z.object({ taskId: z.string() }).passthrough() };
  server.server.setRequestHandler('tasks/get', taskParams, async (params, ctx) => {
    requireTasks(ctx as ServerContext);
    return tasks.get(params.taskId);
  });
  server.server.setRequestHandler('tasks/cancel', taskParams, async (params, ctx) => {
    requireTasks(ctx as ServerContext);
    return tasks.cancel(params.taskId);
  });
  // The SDK lifts `inputResponses` out of the params into the request context (SEP-2322).
  server.server.setRequestHandler('tasks/update', taskParams, async (params, ctx) => {
    requireTasks(ctx as ServerContext);
    return tasks.update(params.taskId, (ctx as ServerContext).mcpReq.inputResponses ?? {});
  });
  gateRequiredTaskTools(server, ['failing_job', 'test_tool_with_task']);
}

/**
 * A tool whose task support is "required" answers -32021 to a client without the extension. The
 * SDK 2.4.0 has no such gate, and McpServer turns any error its tool handler throws into an
 * `isError` tool result, so the gate wraps the registered `tools/call` handler (an SDK internal:
 * acceptable in a test fixture, and the reason this file pins the SDK version).
 */
function gateRequiredTaskTools(server: McpServer, names: readonly string[]): void {
  type Handler = (request: { params?: { name?: string } }, ctx: ServerContext) => Promise<unknown>;
  const handlers = (server.server as unknown as { _requestHandlers: Map<string, Handler> })._requestHandlers;
  const callTool = handlers.get('tools/call');
  if (!callTool) throw new Error('gateRequiredTaskTools: register the tools first');
  handlers.set('tools/call', async (request, ctx) => {
    if (names.includes(request.params?.name ?? '')) requireTasks(ctx);
    return callTool(request, ctx);
  });
}
