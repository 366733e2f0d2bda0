/**
 * One TCP connection from the agent to the Copilot CLI. Every request the agent sends on it — a
 * client's, forwarded, or the agent's own (`connect`, `ping`, `session.detach`, ownership
 * metadata) — gets a fresh numeric id from this connection's counter, so ids can never collide
 * whatever ids the client chose; the response is routed back by that id alone. Requests the CLI
 * sends (to the client) keep the CLI's ids and their responses pass straight back.
 */
import { connect as netConnect } from 'node:net';
import type { FrameDecoderOptions } from './framing.js';
import {
  JsonRpcError,
  type JsonRpcErrorObject,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from './jsonrpc.js';
import { type ProtocolProblem, RpcPeer } from './peer.js';
import { withSessionStoreOff } from './session-store.js';

export interface UpstreamHandlers {
  /** A request from the CLI (to be answered by the client). */
  onRequest?(request: JsonRpcRequest, body: Buffer): void;
  onNotification?(notification: JsonRpcNotification, body: Buffer): void;
  /** The stream broke (framing, JSON) or carried something that is not JSON-RPC. */
  onProblem?(problem: ProtocolProblem): void;
  onClose?(error: Error | undefined): void;
}

/** How a forwarded request ended: its response, or `undefined` if the connection went away first. */
export type Settle = (response: JsonRpcResponse | undefined) => void;

export class UpstreamClosedError extends Error {
  constructor(message = 'the connection to the Copilot CLI closed') {
    super(message);
    this.name = 'UpstreamClosedError';
  }
}

export class Upstream {
  private nextId = 1;
  private readonly pending = new Map<number, Settle>();
  private readonly peer: RpcPeer;

  private constructor(
    socket: import('node:net').Socket,
    private readonly handlers: UpstreamHandlers,
    options: FrameDecoderOptions,
  ) {
    this.peer = new RpcPeer(
      socket,
      {
        onMessage: (message, body) => {
          if (message.kind === 'response') this.settle(message.message);
          else if (message.kind === 'request') this.handlers.onRequest?.(message.message, body);
          else this.handlers.onNotification?.(message.message, body);
        },
        onProblem: (problem) => {
          this.handlers.onProblem?.(problem);
          if (problem.fatal) this.peer.destroy();
        },
        onClose: (error) => {
          const waiting = [...this.pending.values()];
          this.pending.clear();
          for (const settle of waiting) settle(undefined);
          this.handlers.onClose?.(error);
        },
      },
      options,
    );
  }

  /** Opens a connection; rejects if the CLI cannot be reached (or `signal` aborts first). */
  static open(
    host: string,
    port: number,
    handlers: UpstreamHandlers = {},
    options: FrameDecoderOptions & { signal?: AbortSignal } = {},
  ): Promise<Upstream> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host, port });
      const fail = (error: Error) => {
        socket.destroy();
        reject(error);
      };
      const onAbort = () => fail(new Error('connecting to the Copilot CLI timed out'));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('error', fail);
      socket.once('connect', () => {
        socket.off('error', fail);
        options.signal?.removeEventListener('abort', onAbort);
        resolve(new Upstream(socket, handlers, options));
      });
    });
  }

  get socket(): import('node:net').Socket {
    return this.peer.socket;
  }

  get isClosed(): boolean {
    return this.peer.isClosed;
  }

  /** Requests awaiting their response. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Sends a request under a fresh id; `settle` receives the response (its `id` is the upstream
   * one: the caller restores its own). Returns the upstream id, or undefined if already closed.
   * `envelope` (agent-to-agent hops only) is sent as the request's `sessionfleet` member.
   */
  forward(method: string, params: unknown, settle: Settle, envelope?: Record<string, unknown>): number | undefined {
    if (this.peer.isClosed) {
      settle(undefined);
      return undefined;
    }
    const id = this.nextId++;
    this.pending.set(id, settle);
    const message: JsonRpcRequest = { jsonrpc: '2.0', id, method };
    // Every session load leaves here with the CLI's cross-session store off — the client's, the
    // agent's own resumes and hops alike (ADR 0024).
    const sent = withSessionStoreOff(method, params);
    if (sent !== undefined) message.params = sent;
    // Agent-to-agent hops carry their own fields beside params; the CLI never sees them.
    if (envelope !== undefined) (message as JsonRpcRequest & { sessionfleet?: unknown }).sessionfleet = envelope;
    this.peer.send(message);
    return id;
  }

  /**
   * The agent's own request: resolves with `result`, rejects with `JsonRpcError` or on close/abort.
   * `envelope` as for `forward` (hops only).
   */
  call(method: string, params: unknown, signal?: AbortSignal, envelope?: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let id: number | undefined;
      const onAbort = () => {
        if (id !== undefined) this.pending.delete(id);
        reject(new Error(`${method} to the Copilot CLI timed out`));
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      id = this.forward(
        method,
        params,
        (response) => {
          signal?.removeEventListener('abort', onAbort);
          if (!response) reject(new UpstreamClosedError());
          else if (response.error) reject(new JsonRpcError(response.error as JsonRpcErrorObject));
          else resolve(response.result);
        },
        envelope,
      );
    });
  }

  /** Passes a message on unchanged (the client's answer to a CLI request). */
  sendBody(body: Buffer): boolean {
    return this.peer.sendBody(body);
  }

  send(message: unknown): boolean {
    return this.peer.send(message);
  }

  /** Whether a response to `id` is still expected. */
  isPending(id: number): boolean {
    return this.pending.has(id);
  }

  close(): void {
    this.peer.end();
    // Sessions unload once their last connection is gone; do not wait on a CLI that stopped reading.
    setTimeout(() => this.peer.destroy(), 2000).unref();
  }

  destroy(): void {
    this.peer.destroy();
  }

  private settle(response: JsonRpcResponse): void {
    const id = response.id;
    const settle = typeof id === 'number' ? this.pending.get(id) : undefined;
    if (!settle) {
      this.handlers.onProblem?.({ fatal: false, reason: `response to an unknown request id ${JSON.stringify(id)}` });
      return;
    }
    this.pending.delete(id as number);
    settle(response);
  }
}
