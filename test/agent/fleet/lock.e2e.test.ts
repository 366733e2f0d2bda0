import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AgentError } from '../../../agent/core/errors.js';
import { type FleetKeys, fleetKeys } from '../../../agent/fleet/keys.js';
import { FenceGate, LockLostError, MemoryLock, RedisLock, withLock } from '../../../agent/fleet/lock.js';
import { ChannelHub, createFleetRedis } from '../../../agent/fleet/redis.js';
import { redisEndpoint } from '../../../policy/redis-url.js';
import { inspector, sleep, uniqueFleet, waitFor } from './helpers.js';

const url = inject('redisUrl');
let redis: Redis;
let subscriber: Redis;
let hub: ChannelHub;
let plain: Redis;
let keys: FleetKeys;
let lock: RedisLock;

beforeAll(async () => {
  redis = createFleetRedis(redisEndpoint(url), { name: 'lock-test' });
  subscriber = createFleetRedis(redisEndpoint(url), { name: 'lock-test:sub' });
  await Promise.all([redis.connect(), subscriber.connect()]);
  hub = new ChannelHub(subscriber);
  plain = await inspector(url);
  keys = fleetKeys({ fleet: uniqueFleet() });
  lock = new RedisLock({ redis, keys, hub, ttlMs: 1000, waitMs: 2000, waiterTtlMs: 600 });
});

afterAll(async () => {
  redis.disconnect();
  subscriber.disconnect();
  await plain.quit();
});

describe('the collaborative-session lock (Redis)', () => {
  it('grants one holder, hands strictly increasing fencing tokens out, and releases by compare-and-delete', async () => {
    const a = await lock.acquire('s1');
    expect(await plain.get(keys.lockHolder('s1'))).toMatch(new RegExp(`:${a.token}$`));
    expect(await plain.pttl(keys.lockHolder('s1'))).toBeGreaterThan(500);
    await expect(lock.acquire('s1', { waitMs: 0 })).rejects.toMatchObject({ code: 'SESSION_BUSY' });
    expect(await a.release()).toBe(true);
    expect(await a.release()).toBe(true); // idempotent
    const b = await lock.acquire('s1');
    expect(b.token).toBeGreaterThan(a.token);
    await b.release();
    expect(await plain.exists(keys.lockHolder('s1'))).toBe(0);
  });

  it('never deletes a lock that passed to someone else (the seed sketch’s race)', async () => {
    const a = await lock.acquire('s2', { ttlMs: 60 });
    // Simulate a holder stalled past its TTL: stop its renewal by taking the key from under it.
    await plain.del(keys.lockHolder('s2'));
    const b = await lock.acquire('s2');
    // Its next renewal (compare-and-extend) finds another holder and tells the guarded work.
    await waitFor('a to learn it lost the lock', () => a.signal.aborted);
    expect(a.signal.reason).toBeInstanceOf(LockLostError);
    expect(await a.release()).toBe(false);
    expect(await plain.get(keys.lockHolder('s2'))).toMatch(new RegExp(`:${b.token}$`));
    await b.release();

    // Released without renewing in between: the compare-and-delete refuses, and says so.
    const c = await lock.acquire('s2b', { ttlMs: 5000 });
    await plain.del(keys.lockHolder('s2b'));
    const d = await lock.acquire('s2b');
    expect(await c.release()).toBe(false);
    expect(c.signal.aborted).toBe(true);
    expect(await plain.get(keys.lockHolder('s2b'))).toMatch(new RegExp(`:${d.token}$`));
    await d.release();
  });

  it('renews itself while the guarded work runs, past several TTLs', async () => {
    const result = await withLock(
      lock,
      's3',
      async (lease) => {
        await sleep(1000);
        expect(lease.signal.aborted).toBe(false);
        expect(await plain.pttl(keys.lockHolder('s3'))).toBeGreaterThan(100);
        return lease.token;
      },
      { ttlMs: 300 },
    );
    expect(result).toBeGreaterThan(0);
    expect(await plain.exists(keys.lockHolder('s3'))).toBe(0);
  });

  it('serves waiters first come, first served, and wakes them without waiting for a poll', async () => {
    const first = await lock.acquire('s4');
    const order: number[] = [];
    const waiters = [0, 1, 2, 3].map(async (i) => {
      await sleep(i * 40); // arrive in order
      const lease = await lock.acquire('s4', { waitMs: 5000 });
      order.push(i);
      await sleep(5);
      await lease.release();
      return lease.token;
    });
    await sleep(250);
    expect(await plain.zcard(keys.lockQueue('s4'))).toBe(4);
    const releasedAt = Date.now();
    await first.release();
    const tokens = await Promise.all(waiters);
    expect(order).toEqual([0, 1, 2, 3]);
    expect([...tokens].sort((x, y) => x - y)).toEqual(tokens);
    // Four hand-offs by notification take milliseconds; polling would take a waiter renewal each.
    expect(Date.now() - releasedAt).toBeLessThan(400);
  });

  it('tells a writer that waited its bounded time that the session is busy, with Retry-After', async () => {
    const holder = await lock.acquire('s5', { ttlMs: 5000 });
    const started = Date.now();
    const error = await lock.acquire('s5', { waitMs: 300 }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(error).toBeInstanceOf(AgentError);
    const body = (error as AgentError).toHttpBody(404);
    expect(body).toEqual({
      error: {
        code: 'SESSION_BUSY',
        message: 'session "s5" is busy: retry after the current write finishes',
        status: 409,
        retryAfterSeconds: 5,
        sessionId: 's5',
      },
    });
    // The writer that gave up left the queue.
    expect(await plain.zcard(keys.lockQueue('s5'))).toBe(0);
    await holder.release();
  });

  it('drops a waiter that died, so it blocks the queue for at most the waiter TTL', async () => {
    const holder = await lock.acquire('s6');
    // A waiter that joined and then vanished (its process died): queued with a deadline it never renews.
    await redis.sfLockAcquire(
      keys.lockHolder('s6'),
      keys.lockQueue('s6'),
      keys.lockWaiters('s6'),
      keys.fence,
      keys.ticket,
      'ghost',
      1000,
      '1',
      300,
    );
    const next = lock.acquire('s6', { waitMs: 3000 });
    await sleep(50);
    await holder.release();
    const started = Date.now();
    const lease = await next;
    expect(Date.now() - started).toBeLessThan(900);
    expect(await plain.zscore(keys.lockQueue('s6'), 'ghost')).toBeNull();
    await lease.release();
  });

  it('gives the same token back when a grant’s reply was lost and the holder asks again', async () => {
    const args = [keys.lockHolder('s7'), keys.lockQueue('s7'), keys.lockWaiters('s7'), keys.fence, keys.ticket];
    const first = await redis.sfLockAcquire(...args, 'h1', 1000, '0', 300);
    const again = await redis.sfLockAcquire(...args, 'h1', 1000, '0', 300);
    expect(first[0]).toBe(1);
    expect(again).toEqual(first);
    await plain.del(keys.lockHolder('s7'));
  });

  it('fails fast with STORE_UNAVAILABLE when Redis cannot be reached', async () => {
    const dead = createFleetRedis(redisEndpoint('redis://127.0.0.1:1'), { name: 'dead' });
    const offline = new RedisLock({ redis: dead, keys, ttlMs: 1000, waitMs: 1000 });
    const started = Date.now();
    await expect(offline.acquire('s8')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', retryAfterSeconds: 2 });
    expect(Date.now() - started).toBeLessThan(200);
    dead.disconnect();
  });
});

describe('the in-process lock (no --redis)', () => {
  it('has the same contract: FIFO, increasing tokens, bounded wait, TTL', async () => {
    const memory = new MemoryLock({ ttlMs: 1000, waitMs: 1000 });
    const a = await memory.acquire('m');
    const order: number[] = [];
    const waiting = [0, 1, 2].map(async (i) => {
      const lease = await memory.acquire('m');
      order.push(i);
      await lease.release();
      return lease.token;
    });
    await expect(memory.acquire('m', { waitMs: 0 })).rejects.toMatchObject({ code: 'SESSION_BUSY' });
    await a.release();
    const tokens = await Promise.all(waiting);
    expect(order).toEqual([0, 1, 2]);
    expect(tokens.every((t) => t > a.token)).toBe(true);
    const holder = await memory.acquire('m');
    await expect(memory.acquire('m', { waitMs: 50 })).rejects.toMatchObject({
      code: 'SESSION_BUSY',
      retryAfterSeconds: 1,
    });
    await holder.release();
  });
});

describe('the fence gate where writes land', () => {
  it('lets the current and newer tokens through and refuses a stale holder', () => {
    const gate = new FenceGate();
    expect(gate.admit('s', 5)).toBe(true);
    expect(gate.admit('s', 5)).toBe(true);
    expect(gate.admit('s', 7)).toBe(true);
    expect(gate.admit('s', 6)).toBe(false);
    expect(gate.admit('other', 1)).toBe(true);
    gate.forget('s');
    expect(gate.admit('s', 1)).toBe(true);
  });
});
