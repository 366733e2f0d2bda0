/**
 * A bare JSON-RPC client over one TCP connection, with the Copilot CLI's framing: for what the SDK
 * does not let a test do (call any method, choose request ids, send broken frames, watch every
 * notification and the connection closing). Framing goes through the agent's own encoder and
 * decoder, which have tests of their own.
 */
import { connect, type Socket } from 'node:net';
import { encodeMessage, FrameDecoder } from '../../agent/copilot/framing.js';

export interface RpcReply {
  id: number | string | null;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

export interface RawRpcClient {
  readonly socket: Socket;
  /** Every message received that was not a response (notifications and requests from the peer). */
  readonly inbound: Array<{ method: string; id?: number | string; params?: unknown }>;
  /** Resolves when the peer closes the connection. */
  readonly closed: Promise<void>;
  isClosed(): boolean;
  /** Sends a request and resolves with the whole response (result or error). */
  call(method: string, params?: unknown, id?: number | string): Promise<RpcReply>;
  /** `call`, returning `result` and throwing on an error response. */
  request(method: string, params?: unknown): Promise<unknown>;
  send(message: unknown): void;
  writeRaw(bytes: Buffer | string): void;
  close(): Promise<void>;
}

let nextId = 1000;

export async function openRawClient(port: number, host = '127.0.0.1'): Promise<RawRpcClient> {
  const socket = connect({ port, host });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  const decoder = new FrameDecoder();
  const waiting = new Map<number | string, (reply: RpcReply) => void>();
  const inbound: RawRpcClient['inbound'] = [];
  let isClosed = false;
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      resolve();
    }),
  );
  socket.on('error', () => {});
  socket.on('data', (chunk: Buffer) => {
    for (const body of decoder.push(chunk)) {
      const message = JSON.parse(body.toString('utf8')) as RpcReply & { method?: string; params?: unknown };
      if (message.method === undefined && message.id !== null && waiting.has(message.id)) {
        waiting.get(message.id)?.(message);
        waiting.delete(message.id);
      } else if (message.method !== undefined) {
        inbound.push({ method: message.method, id: message.id ?? undefined, params: message.params });
      } else {
        inbound.push({ method: '(response)', id: message.id ?? undefined, params: message });
      }
    }
  });
  const send = (message: unknown) => {
    socket.write(encodeMessage(message));
  };
  const call = (method: string, params?: unknown, id: number | string = nextId++) =>
    new Promise<RpcReply>((resolve, reject) => {
      if (isClosed) {
        reject(new Error(`connection closed before ${method}`));
        return;
      }
      waiting.set(id, resolve);
      void closed.then(() => {
        if (waiting.delete(id)) reject(new Error(`connection closed before the answer to ${method}`));
      });
      send({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });
    });
  return {
    socket,
    inbound,
    closed,
    isClosed: () => isClosed,
    call,
    async request(method, params) {
      const reply = await call(method, params);
      if (reply.error) throw Object.assign(new Error(reply.error.message), reply.error);
      return reply.result;
    },
    send,
    writeRaw: (bytes) => {
      socket.write(bytes);
    },
    close: async () => {
      socket.end();
      setTimeout(() => socket.destroy(), 500).unref();
      await closed;
    },
  };
}

/** Polls `condition` every 50 ms until it holds, or fails after `timeoutMs`. */
export async function eventually<T>(
  condition: () => T | Promise<T>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${timeoutMs} ms (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The parts of an SDK error (vscode-jsonrpc ResponseError) a client acts on. */
export function rpcError(reason: unknown): { code?: unknown; message: string; data?: unknown } {
  const e = reason as { code?: unknown; message: string; data?: unknown };
  return { code: e.code, message: e.message, data: e.data };
}

/** `rpcError` of the call's rejection; throws if the call succeeds. */
export async function rpcErrorOf(promise: Promise<unknown>): Promise<ReturnType<typeof rpcError>> {
  try {
    await promise;
  } catch (error) {
    return rpcError(error);
  }
  throw new Error('expected the call to fail');
}
