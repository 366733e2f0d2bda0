/**
 * Reads the JSON-RPC result of a modern (MCP 2026) response as it passes through the agent: its
 * `resultType` (`complete`, `input_required`, `task`; `error` for an error response) for the
 * metrics, and a `CreateTaskResult` (`resultType: "task"`, `taskId`, `ttlMs`) so the routing core
 * learns which instance holds the task.
 *
 * A task must be known to the fleet before the client can read its id (the spec requires the same
 * of the server: no `CreateTaskResult` before a `tasks/get` would resolve), so the bytes that
 * complete a task result are held until it is recorded:
 * - a JSON body is held whole (it is small: at most `capBytes`; a larger one is let through
 *   unread, it is no task result);
 * - an SSE body passes event by event; only the chunk that completes a task result waits.
 */
import { StringDecoder } from 'node:string_decoder';

export type ResultType = 'complete' | 'input_required' | 'task' | 'error' | 'other';

export interface TaskCreated {
  readonly taskId: string;
  /** Null: unlimited (the policy's cap applies). */
  readonly ttlMs: number | null;
}

/** What the tap says about one chunk: the bytes to write now, and whether a task was found first. */
export interface Tapped {
  readonly write: Buffer | undefined;
  readonly task: TaskCreated | undefined;
}

const NOTHING: Tapped = Object.freeze({ write: undefined, task: undefined });

/** The `resultType` and task of one JSON-RPC message; undefined when it is not a response. */
export function readResponse(message: unknown): { type: ResultType; task: TaskCreated | undefined } | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const m = message as { result?: unknown; error?: unknown; method?: unknown };
  if (m.method !== undefined) return undefined;
  if (m.error !== undefined) return { type: 'error', task: undefined };
  if (typeof m.result !== 'object' || m.result === null) return undefined;
  const r = m.result as { resultType?: unknown; taskId?: unknown; ttlMs?: unknown };
  const given = r.resultType ?? 'complete';
  const type: ResultType = given === 'complete' || given === 'input_required' || given === 'task' ? given : 'other';
  if (type !== 'task' || typeof r.taskId !== 'string') return { type, task: undefined };
  const ttlMs = typeof r.ttlMs === 'number' && Number.isFinite(r.ttlMs) ? r.ttlMs : null;
  return { type, task: { taskId: r.taskId, ttlMs } };
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export class ResultTap {
  private mode: 'json' | 'sse' | 'off' = 'off';
  private held: Buffer[] = [];
  private heldBytes = 0;
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';
  /** The result types seen (one per response message). */
  readonly types: ResultType[] = [];

  constructor(private readonly capBytes: number) {}

  /** The response started: JSON is held whole, SSE scanned, anything else let through. */
  start(status: number, contentType: string | undefined): void {
    if (status !== 200 || contentType === undefined) this.mode = 'off';
    else if (contentType.startsWith('application/json')) this.mode = 'json';
    else if (contentType.startsWith('text/event-stream')) this.mode = 'sse';
    else this.mode = 'off';
  }

  /** Feeds a chunk of the response body. */
  push(chunk: Buffer): Tapped {
    switch (this.mode) {
      case 'off':
        return { write: chunk, task: undefined };
      case 'json': {
        this.held.push(chunk);
        this.heldBytes += chunk.length;
        if (this.heldBytes <= this.capBytes) return NOTHING;
        // Too large for a task result: let it all through, unread.
        this.mode = 'off';
        return { write: this.release(), task: undefined };
      }
      case 'sse':
        return { write: chunk, task: this.scanEvents(chunk) };
    }
  }

  /** The body ended: what is still held, and the task a JSON body created. */
  end(): Tapped {
    if (this.mode !== 'json') return NOTHING;
    this.mode = 'off';
    const body = this.release();
    const value = parse(body.toString('utf8'));
    let task: TaskCreated | undefined;
    for (const message of Array.isArray(value) ? value : [value]) {
      const read = readResponse(message);
      if (!read) continue;
      this.types.push(read.type);
      task ??= read.task;
    }
    return { write: body, task };
  }

  private release(): Buffer {
    const all = Buffer.concat(this.held, this.heldBytes);
    this.held = [];
    this.heldBytes = 0;
    return all;
  }

  /** Dispatches the complete SSE events in `chunk`; returns the first task result among them. */
  private scanEvents(chunk: Buffer): TaskCreated | undefined {
    this.pending += this.decoder.write(chunk).replace(/\r\n?/g, '\n');
    let task: TaskCreated | undefined;
    for (;;) {
      const end = this.pending.indexOf('\n\n');
      if (end < 0) break;
      const event = this.pending.slice(0, end);
      this.pending = this.pending.slice(end + 2);
      const data = event
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(line.charCodeAt(5) === 0x20 ? 6 : 5))
        .join('\n');
      if (data === '') continue;
      const read = readResponse(parse(data));
      if (!read) continue;
      this.types.push(read.type);
      task ??= read.task;
      // The response ends the request's stream: nothing after it is read.
      this.mode = 'off';
      this.pending = '';
      break;
    }
    // An event larger than the cap is not a task result: stop reading this stream.
    if (this.mode === 'sse' && this.pending.length > this.capBytes) {
      this.mode = 'off';
      this.pending = '';
    }
    return task;
  }
}
