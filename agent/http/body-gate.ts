/**
 * The one rule for request bodies on the HTTP front (ADR 0023). A concurrency slot and a request
 * budget stand for work at the upstream, so a request takes them only once its body is in: the
 * body is read up to `--http-body-gate-bytes` before admission (MCP messages are far smaller), and
 * a longer body is admitted when that bound is passed and streams the rest. Either way the body
 * must keep a pace while it is being received — no stall longer than `--http-body-idle-timeout-ms`,
 * on average at least `--http-body-min-bytes-per-second` — or it is answered 408 and its
 * connection closed. Time the agent itself keeps the body waiting (admission, the fleet, the
 * upstream's backpressure: the request is paused) is never held against it.
 *
 * The peeks that need the start of a body (`initialize`, a task request, a retryable forward) read
 * it here too, so a body is read once, by one reader, under one rule.
 */
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import type { Peeked } from './body.js';

export interface BodyPace {
  /** The longest stall, and the most slack the pace can earn. */
  readonly idleMs: number;
  /** The average rate a body must keep up. */
  readonly minBytesPerSecond: number;
}

/**
 * The pace rule as arithmetic: `bytes` arrived at `now`, the body's deadline was `deadline`.
 * Every byte buys `1 / minBytesPerSecond` s of time, but a body is never more than `idleMs` ahead
 * of the clock: a burst cannot buy a long stall afterwards. A deadline already passed stays
 * behind the clock (the sweep has not seen it yet): late bytes do not rescue a late body.
 */
export function nextDeadline(deadline: number, now: number, bytes: number, pace: BodyPace): number {
  return Math.min(deadline + (bytes * 1000) / pace.minBytesPerSecond, now + pace.idleMs);
}

/** The bodies being received by one front, swept against their deadlines by one timer. */
export class BodyWatch {
  private readonly bodies = new Set<GatedBody>();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    readonly pace: BodyPace,
    readonly now: () => number = () => performance.now(),
    sweepEveryMs: number | false = Math.max(50, Math.min(1000, Math.floor(pace.idleMs / 4))),
  ) {
    if (sweepEveryMs !== false) {
      this.timer = setInterval(() => this.sweep(), sweepEveryMs);
      this.timer.unref();
    }
  }

  get watching(): number {
    return this.bodies.size;
  }

  add(body: GatedBody): void {
    this.bodies.add(body);
  }

  delete(body: GatedBody): void {
    this.bodies.delete(body);
  }

  /** Ends every body past its deadline (at most one sweep interval late). */
  sweep(at = this.now()): void {
    for (const body of this.bodies) body.check(at);
  }

  close(): void {
    clearInterval(this.timer);
    this.bodies.clear();
  }
}

/**
 * One request's body: buffered up to what the front asks for (`fill`), then handed on as bytes
 * (`forwardable` when complete) or as a stream of what was buffered and the rest, read only as
 * fast as the upstream takes it.
 */
export class GatedBody {
  private chunks: Buffer[] = [];
  /** Bytes buffered (not yet streamed). */
  private size = 0;
  private whole: Buffer | undefined;
  private complete = false;
  /** The client went away, or the body was too slow: nothing more is read. */
  private ended = false;
  private deadline: number;
  private waiter: { limit: number; resolve: (ok: boolean) => void } | undefined;
  private stream: Readable | undefined;
  private streaming = false;
  /** Bytes received so far. */
  received = 0;

  constructor(
    readonly req: IncomingMessage,
    private readonly watch: BodyWatch,
    private readonly tooSlow: (body: GatedBody) => void,
  ) {
    this.deadline = watch.now() + watch.pace.idleMs;
    watch.add(this);
    req.on('data', this.onData);
    req.once('end', this.onEnd);
    req.once('close', this.onClose);
    req.once('error', this.onClose);
  }

  get isComplete(): boolean {
    return this.complete;
  }

  /**
   * Reads until more than `limit` bytes are buffered or the body ended. True at once when that
   * is so already; false when the client went away or the body was too slow first.
   */
  fill(limit: number): boolean | Promise<boolean> {
    if (this.complete || (!this.streaming && this.size > limit)) return true;
    if (this.ended || this.streaming) return !this.ended;
    return new Promise((resolve) => {
      this.waiter = { limit, resolve };
      this.req.resume();
    });
  }

  /** What `readBodyUpTo` answers, from this body: the start of it, up to a bit over `limit`. */
  async peek(limit: number): Promise<Peeked | undefined> {
    if (!(await this.fill(limit)) || this.streaming) return undefined;
    return { bytes: this.bytes(), complete: this.complete };
  }

  /** The body to send upstream: bytes when complete, else a stream of everything (read or not). */
  forwardable(): Buffer | Readable {
    if (this.complete && !this.streaming) return this.bytes();
    this.stream ??= new Readable({ read: () => this.pull() });
    return this.stream;
  }

  /** The pace rule, swept: paused by the agent costs nothing, stalled or slow past the deadline ends it. */
  check(at: number): void {
    if (this.ended || this.complete) return void this.watch.delete(this);
    if (this.req.isPaused()) {
      this.deadline = Math.max(this.deadline, at + this.watch.pace.idleMs);
      return;
    }
    if (at <= this.deadline) return;
    this.stop();
    this.req.pause();
    this.tooSlow(this);
  }

  private bytes(): Buffer {
    if (this.whole === undefined || this.whole.length !== this.size) {
      this.whole = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
      this.chunks = [this.whole];
    }
    return this.whole;
  }

  /** The upstream wants more: first what was buffered, then the client's bytes as they come. */
  private pull(): void {
    const stream = this.stream!;
    if (!this.streaming) {
      this.streaming = true;
      const buffered = this.size > 0 ? this.bytes() : undefined;
      this.chunks = [];
      this.whole = undefined;
      this.size = 0;
      if (buffered) stream.push(buffered);
      if (this.complete) return void stream.push(null);
    }
    if (!this.ended && !this.complete) this.req.resume();
  }

  private readonly onData = (chunk: Buffer): void => {
    this.received += chunk.length;
    this.deadline = nextDeadline(this.deadline, this.watch.now(), chunk.length, this.watch.pace);
    if (this.streaming) {
      if (!this.stream!.push(chunk)) this.req.pause();
      return;
    }
    this.chunks.push(chunk);
    this.size += chunk.length;
    const waiter = this.waiter;
    if (waiter && this.size > waiter.limit) {
      this.req.pause();
      this.waiter = undefined;
      waiter.resolve(true);
    }
  };

  private readonly onEnd = (): void => {
    this.complete = true;
    this.watch.delete(this);
    if (this.streaming) this.stream!.push(null);
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve(true);
  };

  private readonly onClose = (): void => {
    if (this.complete) return;
    this.stop();
  };

  private stop(): void {
    this.ended = true;
    this.watch.delete(this);
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve(false);
  }
}
