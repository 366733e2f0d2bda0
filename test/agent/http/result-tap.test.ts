import { describe, expect, it } from 'vitest';
import { ResultTap } from '../../../agent/http/result-tap.js';

const task = { jsonrpc: '2.0', id: 1, result: { resultType: 'task', taskId: 't-1', status: 'working', ttlMs: 5000 } };

describe('ResultTap', () => {
  it('holds a JSON body whole and gives it back at the end with the task it created', () => {
    const tap = new ResultTap(1024);
    tap.start(200, 'application/json');
    const bytes = Buffer.from(JSON.stringify(task));
    expect(tap.push(bytes.subarray(0, 10))).toEqual({ write: undefined, task: undefined });
    expect(tap.push(bytes.subarray(10))).toEqual({ write: undefined, task: undefined });
    const end = tap.end();
    expect(end.write?.equals(bytes)).toBe(true);
    expect(end.task).toEqual({ taskId: 't-1', ttlMs: 5000 });
    expect(tap.types).toEqual(['task']);
  });

  it('lets a JSON body larger than its cap through unread', () => {
    const tap = new ResultTap(8);
    tap.start(200, 'application/json');
    expect(tap.push(Buffer.from('{"jsonrpc"')).write?.toString()).toBe('{"jsonrpc"');
    expect(tap.push(Buffer.from(':"2.0"}')).write?.toString()).toBe(':"2.0"}');
    expect(tap.end()).toEqual({ write: undefined, task: undefined });
  });

  it('finds a task result in the SSE chunk that completes its event, across split chunks and CRLF', () => {
    const tap = new ResultTap(4096);
    tap.start(200, 'text/event-stream');
    const progress = `event: message\r\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress' })}\r\n\r\n`;
    const result = `event: message\r\ndata: ${JSON.stringify(task)}\r\n\r\n`;
    expect(tap.push(Buffer.from(progress)).task).toBeUndefined();
    const first = tap.push(Buffer.from(result.slice(0, 30)));
    expect(first.task).toBeUndefined();
    expect(first.write?.toString()).toBe(result.slice(0, 30));
    expect(tap.push(Buffer.from(result.slice(30))).task).toEqual({ taskId: 't-1', ttlMs: 5000 });
    expect(tap.types).toEqual(['task']);
    // Nothing after the response is read (a later chunk passes as it is).
    expect(tap.push(Buffer.from(result))).toEqual({ write: Buffer.from(result), task: undefined });
    expect(tap.types).toEqual(['task']);
  });

  it('reads result types: complete by default, input_required, error; unlimited ttlMs is null', () => {
    const tap = new ResultTap(4096);
    tap.start(200, 'application/json');
    tap.push(
      Buffer.from(
        JSON.stringify([
          { jsonrpc: '2.0', id: 1, result: {} },
          { jsonrpc: '2.0', id: 2, result: { resultType: 'input_required' } },
          { jsonrpc: '2.0', id: 3, error: { code: -32602, message: 'x' } },
          { jsonrpc: '2.0', id: 4, result: { resultType: 'task', taskId: 'u', ttlMs: null } },
        ]),
      ),
    );
    expect(tap.end().task).toEqual({ taskId: 'u', ttlMs: null });
    expect(tap.types).toEqual(['complete', 'input_required', 'error', 'task']);
  });

  it('passes anything but a 200 JSON or SSE answer untouched', () => {
    const tap = new ResultTap(4096);
    tap.start(400, 'application/json');
    expect(tap.push(Buffer.from('{}')).write?.toString()).toBe('{}');
    expect(tap.end()).toEqual({ write: undefined, task: undefined });
  });
});
