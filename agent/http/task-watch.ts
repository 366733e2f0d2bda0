/**
 * Counts MCP tasks (the Tasks extension, SEP-2663) against their creator's `limits.tasksPer*`
 * from the responses that pass: a `tools/call` answered with a `CreateTaskResult`
 * (`resultType: "task"`, `taskId`, `ttlMs`) starts one, a `tasks/get` with a terminal status or a
 * successful `tasks/cancel` for the task named in `Mcp-Name` ends it (or its `ttlMs` does).
 *
 * Only when a task limit is set, and only for those three methods: the response is copied up to
 * `MAX_BYTES` beside the stream to the client (never delaying it) and read once it ended, as one
 * JSON body or as the `data:` lines of an event stream.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Budgets, Caller } from '../routing/index.js';

const WATCHED = new Set(['tools/call', 'tasks/get', 'tasks/cancel']);
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
/** A CreateTaskResult or a task status is small; a larger response is not read. */
const MAX_BYTES = 64 * 1024;

export class TaskWatch {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  private constructor(
    private readonly budgets: Budgets,
    private readonly caller: Caller,
    private readonly method: string,
    private readonly name: string | undefined,
  ) {}

  /** A watch for this request's response, or undefined when there is nothing to count. */
  static of(budgets: Budgets, caller: Caller | undefined, headers: IncomingHttpHeaders): TaskWatch | undefined {
    const method = headers['mcp-method'];
    if (!caller || typeof method !== 'string' || !WATCHED.has(method) || !budgets.countsTasks) return undefined;
    const name = headers['mcp-name'];
    return new TaskWatch(budgets, caller, method, typeof name === 'string' ? name : undefined);
  }

  push(chunk: Buffer): void {
    if (this.size > MAX_BYTES) return;
    this.size += chunk.length;
    if (this.size <= MAX_BYTES) this.chunks.push(chunk);
  }

  /** The response ended: count what it says. */
  end(): void {
    if (this.size > MAX_BYTES || this.size === 0) return;
    const result = resultOf(Buffer.concat(this.chunks).toString('utf8'));
    if (!result) return;
    if (this.method === 'tools/call') {
      const task = (typeof result.task === 'object' && result.task !== null ? result.task : result) as Record<
        string,
        unknown
      >;
      if (result.resultType !== 'task' || typeof task.taskId !== 'string') return;
      const ttl = typeof task.ttlMs === 'number' ? task.ttlMs : typeof task.ttl === 'number' ? task.ttl : undefined;
      this.budgets.taskStarted(task.taskId, this.caller, ttl);
      return;
    }
    if (this.name === undefined) return;
    const status = typeof result.status === 'string' ? result.status : undefined;
    if (this.method === 'tasks/cancel' || (status !== undefined && TERMINAL.has(status))) {
      this.budgets.taskEnded(this.name);
    }
  }
}

/** The JSON-RPC `result` of a response body: one JSON message, or the last one of an event stream. */
function resultOf(text: string): Record<string, unknown> | undefined {
  const candidates = text.trimStart().startsWith('{')
    ? [text]
    : text
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trim());
  for (const candidate of candidates.reverse()) {
    try {
      const message = JSON.parse(candidate) as { result?: unknown };
      if (typeof message.result === 'object' && message.result !== null)
        return message.result as Record<string, unknown>;
    } catch {
      // Not a JSON message: keep looking.
    }
  }
  return undefined;
}
