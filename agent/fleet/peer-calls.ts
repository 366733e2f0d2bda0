/**
 * Peer calls (ADR 0025): the admin API of any agent asks the agent that holds a task or a stream
 * to act on it — cancel the task upstream, list or close its streams — and gets its answer back.
 * Each agent listens on a pub/sub channel of its own (`peerChannel`); a call is published there
 * with a request id and the caller's id, and the answer is published on the caller's channel. A
 * call to this instance is handled at once, without Redis; an instance that does not answer
 * within the timeout (dead, cut off, or an agent too old to know the channel: nobody subscribed)
 * is reported as silent, never waited on forever. Without `--redis` there is only this instance.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { FleetKeys } from './keys.js';
import type { ChannelHub } from './redis.js';
import type { PeerAnswer, PeerCalls, PeerOp, PeerOps } from './types.js';

type Handler = (args: unknown) => Promise<unknown>;

type Message =
  | { kind: 'call'; op: PeerOp; requestId: string; replyTo: string; args: unknown }
  | { kind: 'answer'; requestId: string; ok: boolean; value?: unknown };

/** One instance: every call is this instance's. */
export class LocalPeerCalls implements PeerCalls {
  private readonly handlers = new Map<string, Handler>();

  constructor(readonly instanceId: string) {}

  handle<Op extends PeerOp>(op: Op, handler: (args: PeerOps[Op]['args']) => Promise<PeerOps[Op]['answer']>): void {
    this.handlers.set(op, handler as Handler);
  }

  async call<Op extends PeerOp>(instanceId: string, op: Op, args: PeerOps[Op]['args']): Promise<PeerAnswer<Op>> {
    if (instanceId !== this.instanceId) return { instanceId, answered: false };
    return this.here(op, args);
  }

  async callAll<Op extends PeerOp>(op: Op, args: PeerOps[Op]['args']): Promise<Array<PeerAnswer<Op>>> {
    return [await this.here(op, args)];
  }

  /** This instance's handler; one that is missing or fails is a silent instance. */
  protected async here<Op extends PeerOp>(op: Op, args: unknown): Promise<PeerAnswer<Op>> {
    const handler = this.handlers.get(op);
    const instanceId = this.instanceId;
    if (!handler) return { instanceId, answered: false };
    try {
      return { instanceId, answered: true, value: (await handler(args)) as PeerOps[Op]['answer'] };
    } catch {
      return { instanceId, answered: false };
    }
  }
}

export interface RedisPeerCallsOptions {
  redis: Redis;
  keys: FleetKeys;
  instanceId: string;
  /** The live instances of the fleet (its registry). Throws when Redis is unreachable. */
  liveInstances: () => Promise<string[]>;
  /** The error to throw when Redis is unreachable (STORE_UNAVAILABLE). */
  unavailable: () => Error;
  /** How long a peer has to answer. */
  timeoutMs: number;
}

export class RedisPeerCalls extends LocalPeerCalls {
  private readonly waiting = new Map<string, (message: Extract<Message, { kind: 'answer' }>) => void>();
  private off: (() => void) | undefined;

  constructor(private readonly o: RedisPeerCallsOptions) {
    super(o.instanceId);
  }

  async listen(hub: ChannelHub): Promise<void> {
    this.off = (await hub.listen(this.o.keys.peerChannel(this.instanceId), (m) => void this.onMessage(m))).off;
  }

  close(): void {
    this.off?.();
    this.off = undefined;
  }

  override async call<Op extends PeerOp>(
    instanceId: string,
    op: Op,
    args: PeerOps[Op]['args'],
  ): Promise<PeerAnswer<Op>> {
    if (instanceId === this.instanceId) return this.here(op, args);
    if (this.o.redis.status !== 'ready') throw this.o.unavailable();
    const requestId = randomUUID();
    const answer = new Promise<PeerAnswer<Op>>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(requestId);
        resolve({ instanceId, answered: false });
      }, this.o.timeoutMs);
      this.waiting.set(requestId, (message) => {
        clearTimeout(timer);
        this.waiting.delete(requestId);
        resolve(
          message.ok
            ? { instanceId, answered: true, value: message.value as PeerOps[Op]['answer'] }
            : { instanceId, answered: false },
        );
      });
    });
    const message: Message = { kind: 'call', op, requestId, replyTo: this.instanceId, args };
    const receivers = await this.o.redis.publish(this.o.keys.peerChannel(instanceId), JSON.stringify(message));
    // Nobody listens there (gone, or an agent that predates peer calls): silent now, not at the timeout.
    if (receivers === 0) this.waiting.get(requestId)?.({ kind: 'answer', requestId, ok: false });
    return answer;
  }

  override async callAll<Op extends PeerOp>(op: Op, args: PeerOps[Op]['args']): Promise<Array<PeerAnswer<Op>>> {
    if (this.o.redis.status !== 'ready') throw this.o.unavailable();
    let live: string[];
    try {
      live = await this.o.liveInstances();
    } catch {
      throw this.o.unavailable();
    }
    const ids = new Set([this.instanceId, ...live]);
    return Promise.all([...ids].map((id) => this.call(id, op, args)));
  }

  private async onMessage(text: string): Promise<void> {
    let message: Message;
    try {
      message = JSON.parse(text) as Message;
    } catch {
      return;
    }
    if (message.kind === 'answer') {
      this.waiting.get(message.requestId)?.(message);
      return;
    }
    if (message.kind !== 'call' || typeof message.replyTo !== 'string') return;
    const answered = await this.here(message.op, message.args);
    const reply: Message = {
      kind: 'answer',
      requestId: message.requestId,
      ok: answered.answered,
      ...(answered.answered ? { value: answered.value } : {}),
    };
    await this.o.redis.publish(this.o.keys.peerChannel(message.replyTo), JSON.stringify(reply)).catch(() => {});
  }
}
