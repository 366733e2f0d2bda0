import { describe, expect, it } from 'vitest';
import { TurnLock } from '../../../agent/copilot/turn-lock.js';

describe('TurnLock', () => {
  it('hands the lock to waiters first come, first served', async () => {
    const lock = new TurnLock();
    const order: string[] = [];
    expect(await lock.acquire(1000)).toBe(true);
    const b = lock.acquire(1000).then((ok) => order.push(`b:${ok}`));
    const c = lock.acquire(1000).then((ok) => order.push(`c:${ok}`));
    expect(lock.waiting).toBe(2);
    lock.release();
    await b;
    expect(order).toEqual(['b:true']);
    lock.release();
    await c;
    expect(order).toEqual(['b:true', 'c:true']);
    lock.release();
    expect(lock.isHeld).toBe(false);
  });

  it('tells a waiter no once its wait runs out, and at once with no wait allowed', async () => {
    const lock = new TurnLock();
    await lock.acquire(0);
    expect(await lock.acquire(0)).toBe(false);
    const started = Date.now();
    expect(await lock.acquire(50)).toBe(false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(lock.waiting).toBe(0);
    expect(lock.isHeld).toBe(true);
  });

  it('turns every waiter away when the session ends', async () => {
    const lock = new TurnLock();
    await lock.acquire(0);
    const waiter = lock.acquire(10_000);
    lock.cancel();
    expect(await waiter).toBe(false);
    expect(lock.isHeld).toBe(false);
    expect(await lock.acquire(0)).toBe(true);
  });
});
