/**
 * The collaborative-session lock (SPEC.md §6), replacing the seed's `SET NX EX` / `GET` / `DEL`
 * sketch, whose release could delete a lock that had meanwhile passed to someone else.
 *
 * Taken from redlock's design: a random holder id per acquisition, release and renewal only by
 * compare-and-delete / compare-and-extend scripts, and automatic renewal while the guarded work
 * runs, with an AbortSignal that fires if the lock is lost anyway. Added here:
 * - a fencing token (one fleet-wide counter, incremented in the acquire script) that the owner
 *   passes to the upstream, so a holder that stalled past its TTL cannot overwrite a newer holder's
 *   work (Kleppmann's objection to TTL locks);
 * - a bounded FIFO queue instead of retry-with-jitter: waiters take tickets and only the head may
 *   take a free lock, so a busy session is served in arrival order and nobody starves. Each waiter
 *   renews its place (a deadline in a second sorted set); a waiter whose process died stops
 *   renewing and is dropped, so it blocks the queue for at most the waiter TTL.
 * - wake-up by pub/sub: the release script publishes the id of the new head on the lock's channel;
 *   only that waiter retries at once. Polling remains as the fallback (a lost message, a holder
 *   that died without releasing): the head sleeps until the holder's TTL runs out, the others
 *   re-check at the renewal interval of their place.
 *
 * Without Redis (one instance), `MemoryLock` gives the same contract in-process.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { AgentError } from '../core/errors.js';
import type { FleetKeys } from './keys.js';
import { type ChannelHub, replicaAcks } from './redis.js';
import { decodeLockAcquire, decodeLockExtend, decodeLockLeave, decodeLockRelease } from './replies.js';
import { defineFleetCommands } from './scripts.js';

export interface LockOptions {
  /** How long the lock lives without renewal. */
  ttlMs?: number;
  /** How long to wait in line before SESSION_BUSY; 0 tries once. */
  waitMs?: number;
  /** Aborts the wait (the client went away). */
  signal?: AbortSignal;
}

export interface LockLease {
  readonly resource: string;
  /** Strictly greater than every token handed out for this resource before. */
  readonly token: number;
  /** Aborted if the lock is lost while held (renewal failed until the TTL ran out). */
  readonly signal: AbortSignal;
  /** Compare-and-delete; false if the lock had already been lost. Safe to call twice. */
  release(): Promise<boolean>;
}

export interface SessionLock {
  acquire(resource: string, options?: LockOptions): Promise<LockLease>;
}

/** Runs `work` under the lock and always releases it. */
export async function withLock<T>(
  lock: SessionLock,
  resource: string,
  work: (lease: LockLease) => Promise<T>,
  options?: LockOptions,
): Promise<T> {
  const lease = await lock.acquire(resource, options);
  try {
    return await work(lease);
  } finally {
    await lease.release();
  }
}

export class LockLostError extends Error {
  constructor(
    readonly resource: string,
    why: string,
  ) {
    super(`lock on ${JSON.stringify(resource)} lost: ${why}`);
    this.name = 'LockLostError';
  }
}

function busy(resource: string, remainingMs: number, ahead: number): AgentError {
  const retryAfterSeconds = Math.max(1, Math.ceil(remainingMs / 1000));
  const line = ahead > 0 ? `, ${ahead} writer${ahead === 1 ? '' : 's'} ahead` : '';
  return new AgentError('SESSION_BUSY', `session ${JSON.stringify(resource)} is busy${line}`, {
    retryAfterSeconds,
    details: { sessionId: resource },
  });
}

function unavailable(error: unknown): AgentError {
  return new AgentError('STORE_UNAVAILABLE', 'the fleet store (Redis) did not answer the lock request', {
    retryAfterSeconds: 2,
    details: { cause: error instanceof Error ? error.message : String(error) },
  });
}

function holderId(): string {
  return randomBytes(12).toString('base64url');
}

/** Sleeps up to `ms`; `wake()` or the signal end it early. */
function nap(ms: number, signal: AbortSignal | undefined): { done: Promise<void>; wake: () => void } {
  let wake = () => {};
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(finish, Math.max(0, ms));
    function finish() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', finish);
      resolve();
    }
    wake = finish;
    signal?.addEventListener('abort', finish, { once: true });
  });
  return { done, wake };
}

export interface RedisLockOptions {
  redis: Redis;
  keys: FleetKeys;
  /** Turn notifications; without it waiters only poll. */
  hub?: ChannelHub;
  /** @default 30000 */
  ttlMs?: number;
  /** @default 10000 */
  waitMs?: number;
  /** A waiter that does not renew its place for this long is dropped. @default 3000 */
  waiterTtlMs?: number;
  /**
   * Replicas that must have a grant (and so its fencing token) before the lease is handed out,
   * so that a failover to one of them cannot hand the same token out again. 0 with a single
   * server; 1 behind Sentinel. A grant no replica confirms within `replicationTimeoutMs` is
   * released and refused as STORE_UNAVAILABLE. @default 0
   */
  replicasToAck?: number;
  /** @default 250 */
  replicationTimeoutMs?: number;
}

export class RedisLock implements SessionLock {
  readonly ttlMs: number;
  readonly waitMs: number;
  readonly waiterTtlMs: number;

  constructor(private readonly options: RedisLockOptions) {
    defineFleetCommands(options.redis);
    this.ttlMs = options.ttlMs ?? 30_000;
    this.waitMs = options.waitMs ?? 10_000;
    this.waiterTtlMs = options.waiterTtlMs ?? 3000;
  }

  /**
   * Hands a granted lease out once enough replicas hold it. Replication is asynchronous: without
   * this a primary that dies right after INCR could leave a promoted replica one token behind,
   * and the next grant would repeat a token already in use.
   */
  private async confirmed(lease: RedisLease): Promise<LockLease> {
    const replicas = this.options.replicasToAck ?? 0;
    if (replicas <= 0) return lease;
    let acked = 0;
    let cause = 'no replica acknowledged the grant in time';
    try {
      acked = await replicaAcks(
        this.options.redis,
        this.options.keys.fence,
        replicas,
        this.options.replicationTimeoutMs ?? 250,
      );
    } catch (error) {
      cause = error instanceof Error ? error.message : String(error);
    }
    if (acked >= replicas) return lease;
    await lease.release().catch(() => false);
    throw unavailable(new Error(`${cause} (${acked} of ${replicas})`));
  }

  async acquire(resource: string, options: LockOptions = {}): Promise<LockLease> {
    const { redis, keys, hub } = this.options;
    const ttl = options.ttlMs ?? this.ttlMs;
    const waitMs = options.waitMs ?? this.waitMs;
    const id = holderId();
    const lockKeys = [
      keys.lockHolder(resource),
      keys.lockQueue(resource),
      keys.lockWaiters(resource),
      keys.fence,
      keys.ticket,
    ];
    const attempt = async (join: boolean) => {
      try {
        return decodeLockAcquire(await redis.sfLockAcquire(...lockKeys, id, ttl, join ? '1' : '0', this.waiterTtlMs));
      } catch (error) {
        throw unavailable(error);
      }
    };
    const leave = () =>
      redis
        .sfLockLeave(lockKeys[0]!, lockKeys[1]!, lockKeys[2]!, id, keys.lockChannel(resource))
        .then(decodeLockLeave, () => false);

    // The uncontended path: one round trip, no subscription.
    const deadline = Date.now() + waitMs;
    let result = await attempt(waitMs > 0);
    if (result.granted) return this.confirmed(new RedisLease(redis, keys, resource, id, result.token, ttl));
    if (waitMs <= 0) throw busy(resource, result.remainingMs, result.position);

    // Contended: listen for our turn, then try again at once, which closes the gap between the
    // first attempt and the subscription.
    // `woken` catches a notice that arrives while an attempt is on the wire, before the nap starts.
    let woken = false;
    let wake = () => {};
    const subscription = hub
      ? await hub.listen(keys.lockChannel(resource), (message) => {
          if (message !== id) return;
          woken = true;
          wake();
        })
      : undefined;
    try {
      // Renew our place well within the waiter TTL, so a slow event loop does not cost it.
      const renewEvery = Math.max(10, Math.floor(this.waiterTtlMs / 3));
      for (;;) {
        if (options.signal?.aborted) {
          await leave();
          throw options.signal.reason ?? new Error('aborted');
        }
        woken = false;
        result = await attempt(true).catch(async (error: unknown) => {
          await leave();
          throw error;
        });
        if (result.granted) return this.confirmed(new RedisLease(redis, keys, resource, id, result.token, ttl));
        const remaining = deadline - Date.now();
        if (remaining <= 0) {
          await leave();
          throw busy(resource, result.remainingMs, result.position);
        }
        // The head of the queue also wakes when the holder's TTL would run out (a holder that
        // died never publishes); everyone else re-checks when its place needs renewing.
        if (woken) continue;
        const untilHolderExpires =
          result.position === 0 && result.remainingMs > 0 ? result.remainingMs + 2 : renewEvery;
        const sleep = nap(Math.min(remaining, renewEvery, untilHolderExpires), options.signal);
        wake = sleep.wake;
        await sleep.done;
      }
    } finally {
      subscription?.off();
    }
  }
}

class RedisLease implements LockLease {
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private confirmedUntil: number;
  private renewing = false;
  private released: Promise<boolean> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: FleetKeys,
    readonly resource: string,
    private readonly id: string,
    readonly token: number,
    private readonly ttlMs: number,
  ) {
    this.signal = this.controller.signal;
    this.confirmedUntil = Date.now() + ttlMs;
    // Renew at a third of the TTL: two renewals may fail (a Redis blip) before the lock is at risk.
    this.timer = setInterval(() => void this.renew(), Math.max(10, Math.floor(ttlMs / 3)));
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    if (this.renewing || this.released) return;
    this.renewing = true;
    const sentAt = Date.now();
    try {
      const ok = decodeLockExtend(
        await this.redis.sfLockExtend(this.keys.lockHolder(this.resource), this.id, this.ttlMs),
      );
      if (ok) this.confirmedUntil = sentAt + this.ttlMs;
      else this.lose('another holder has it, or it expired');
    } catch {
      if (Date.now() >= this.confirmedUntil) this.lose('Redis did not answer until the TTL ran out');
    } finally {
      this.renewing = false;
    }
  }

  private lose(why: string): void {
    this.stop();
    if (!this.controller.signal.aborted) this.controller.abort(new LockLostError(this.resource, why));
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  release(): Promise<boolean> {
    this.released ??= (async () => {
      this.stop();
      if (this.controller.signal.aborted) return false;
      try {
        const reply = await this.redis.sfLockRelease(
          this.keys.lockHolder(this.resource),
          this.keys.lockQueue(this.resource),
          this.keys.lockWaiters(this.resource),
          this.id,
          this.keys.lockChannel(this.resource),
        );
        const ok = decodeLockRelease(reply);
        if (!ok) this.lose('it had expired before the release');
        return ok;
      } catch {
        // Redis is away: the lock ends by itself when its TTL runs out.
        return false;
      }
    })();
    return this.released;
  }
}

interface MemoryHolder {
  id: string;
  token: number;
  expires: NodeJS.Timeout;
  controller: AbortController;
}

interface MemoryState {
  holder: MemoryHolder | undefined;
  queue: Array<{ id: string; grant: () => void }>;
}

/**
 * The same contract in one process (no `--redis`): FIFO wait, fencing tokens, TTL, renewal while
 * held. There is no other process to fence off, but the fronts then need only one code path.
 */
export class MemoryLock implements SessionLock {
  private readonly states = new Map<string, MemoryState>();
  private fence = 0;

  constructor(private readonly defaults: { ttlMs?: number; waitMs?: number } = {}) {}

  async acquire(resource: string, options: LockOptions = {}): Promise<LockLease> {
    const ttl = options.ttlMs ?? this.defaults.ttlMs ?? 30_000;
    const waitMs = options.waitMs ?? this.defaults.waitMs ?? 10_000;
    const id = holderId();
    let state = this.states.get(resource);
    if (!state) {
      state = { holder: undefined, queue: [] };
      this.states.set(resource, state);
    }
    const s = state;
    if (!s.holder && s.queue.length === 0) return this.grant(resource, s, id, ttl);
    if (waitMs <= 0) throw busy(resource, ttl, s.queue.length + 1);
    return new Promise<LockLease>((resolve, reject) => {
      const entry = {
        id,
        grant: () => {
          cleanup();
          resolve(this.grant(resource, s, id, ttl));
        },
      };
      const timer = setTimeout(() => {
        cleanup();
        remove();
        reject(busy(resource, ttl, s.queue.length));
      }, waitMs);
      const onAbort = () => {
        cleanup();
        remove();
        reject(options.signal?.reason ?? new Error('aborted'));
      };
      const cleanup = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
      };
      const remove = () => {
        const i = s.queue.indexOf(entry);
        if (i >= 0) s.queue.splice(i, 1);
        if (i === 0) this.next(resource, s);
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      s.queue.push(entry);
    });
  }

  private grant(resource: string, state: MemoryState, id: string, ttl: number): LockLease {
    const controller = new AbortController();
    const expire = () => {
      if (state.holder?.id !== id) return;
      state.holder = undefined;
      controller.abort(new LockLostError(resource, 'its TTL ran out'));
      this.next(resource, state);
    };
    const holder: MemoryHolder = { id, token: ++this.fence, expires: setTimeout(expire, ttl), controller };
    holder.expires.unref();
    state.holder = holder;
    // Renewal, as in Redis: the TTL only matters if the holder stops running.
    const renew = setInterval(
      () => {
        if (state.holder?.id !== id) return clearInterval(renew);
        clearTimeout(holder.expires);
        holder.expires = setTimeout(expire, ttl);
        holder.expires.unref();
      },
      Math.max(10, Math.floor(ttl / 3)),
    );
    renew.unref();
    let released: boolean | undefined;
    return {
      resource,
      token: holder.token,
      signal: controller.signal,
      release: async () => {
        if (released !== undefined) return released;
        clearInterval(renew);
        released = state.holder?.id === id;
        if (released) {
          clearTimeout(holder.expires);
          state.holder = undefined;
          this.next(resource, state);
        }
        return released;
      },
    };
  }

  private next(resource: string, state: MemoryState): void {
    if (state.holder) return;
    const head = state.queue.shift();
    if (head) head.grant();
    else this.states.delete(resource);
  }
}

/**
 * Where the write lands, fencing is checked: the owner keeps the highest token it has let through
 * per session and refuses an older one (a holder that stalled past its TTL). The same holder may
 * send several writes under one token.
 */
export class FenceGate {
  private readonly highest = new Map<string, number>();

  admit(resource: string, token: number): boolean {
    const last = this.highest.get(resource) ?? 0;
    if (token < last) return false;
    this.highest.set(resource, token);
    return true;
  }

  forget(resource: string): void {
    this.highest.delete(resource);
  }
}
