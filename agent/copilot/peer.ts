/**
 * One end of a framed JSON-RPC stream over TCP: bytes in → decoded messages out, messages in →
 * frames out. The owner decides what a protocol error means (the agent closes that connection);
 * nothing here can throw into the socket's event loop, so one bad peer never disturbs another.
 */
import type { Socket } from 'node:net';
import {
  encodeBody,
  encodeMessage,
  FrameDecoder,
  type FrameDecoderOptions,
  FramingError,
  type FramingErrorReason,
} from './framing.js';
import { classify, type JsonRpcMessage } from './jsonrpc.js';

export type ValidMessage = Exclude<JsonRpcMessage, { kind: 'invalid' }>;

export type ProtocolProblem =
  /** The byte stream cannot be read any further: the connection must close. */
  | { fatal: true; reason: string; framing?: FramingErrorReason }
  /** A frame that is valid JSON but not JSON-RPC: the stream is still in sync. */
  | { fatal: false; reason: string };

export interface PeerHandlers {
  /** A decoded message; `body` is its exact bytes, for passing it on unchanged. */
  onMessage(message: ValidMessage, body: Buffer): void;
  onProblem(problem: ProtocolProblem): void;
  onClose(error: Error | undefined): void;
}

export class RpcPeer {
  private readonly decoder: FrameDecoder;
  private closed = false;
  /** A fatal problem was reported: nothing more is read from this socket. */
  private halted = false;
  private corked = false;
  private closeError: Error | undefined;

  constructor(
    readonly socket: Socket,
    private readonly handlers: PeerHandlers,
    options: FrameDecoderOptions = {},
  ) {
    this.decoder = new FrameDecoder(options);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => {
      this.closeError ??= error;
    });
    socket.on('close', () => {
      this.closed = true;
      // The partial frame goes now, not when the peer object is collected.
      this.decoder.release();
      this.handlers.onClose(this.closeError);
    });
  }

  get isClosed(): boolean {
    return this.closed || this.socket.destroyed;
  }

  /** The largest frame accepted from the other side from now on. */
  get frameLimit(): number {
    return this.decoder.frameLimit;
  }

  set frameLimit(bytes: number) {
    this.decoder.frameLimit = bytes;
  }

  /** Bytes held for this connection: a partial frame read, and output not yet taken by the socket. */
  get bufferedBytes(): number {
    return this.decoder.bufferedBytes + this.socket.writableLength;
  }

  /** True once a fatal problem stopped reading: the socket must not be resumed. */
  get isHalted(): boolean {
    return this.halted;
  }

  /** Sends a message; false when the socket's buffer is full (wait for `drain`). */
  send(message: unknown): boolean {
    return this.write(encodeMessage(message));
  }

  /** Sends a body exactly as received from the other side. */
  sendBody(body: Buffer): boolean {
    return this.write(encodeBody(body));
  }

  /** Sends a last message, then ends the connection once it is flushed. */
  sendAndEnd(message: unknown): void {
    if (this.isClosed) return;
    this.socket.end(encodeMessage(message));
    // A peer that never reads must not keep the socket open forever.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  end(): void {
    if (!this.isClosed) this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private write(frame: Buffer): boolean {
    if (this.isClosed || this.socket.writableEnded) return false;
    // Frames written in one turn of the event loop (the answers to a chunk of pipelined requests)
    // leave in one system call.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    return this.socket.write(frame);
  }

  private halt(): void {
    this.halted = true;
    this.socket.pause();
  }

  private onData(chunk: Buffer): void {
    if (this.closed || this.halted) return;
    let bodies: Buffer[];
    try {
      bodies = this.decoder.push(chunk);
    } catch (error) {
      this.halt();
      if (error instanceof FramingError) {
        this.handlers.onProblem({ fatal: true, reason: error.message, framing: error.reason });
      } else {
        this.handlers.onProblem({ fatal: true, reason: `framing failed: ${String(error)}` });
      }
      return;
    }
    for (const body of bodies) {
      if (this.socket.destroyed) return;
      let value: unknown;
      try {
        value = JSON.parse(body.toString('utf8'));
      } catch (error) {
        this.halt();
        this.handlers.onProblem({
          fatal: true,
          reason: `frame body is not JSON (${error instanceof Error ? error.message : String(error)})`,
        });
        return;
      }
      const message = classify(value);
      if (message.kind === 'invalid') {
        this.handlers.onProblem({ fatal: false, reason: message.reason });
        continue;
      }
      try {
        this.handlers.onMessage(message, body);
      } catch (error) {
        // A bug in handling one message closes that connection, never the agent.
        this.halt();
        this.handlers.onProblem({
          fatal: true,
          reason: `internal error handling a message: ${error instanceof Error ? error.message : String(error)}`,
        });
        return;
      }
    }
  }
}
