import { Redis } from 'ioredis';
import { describe, expect, inject, it } from 'vitest';

describe('the private redis-server of the test run', () => {
  it('answers on its own loopback port', async () => {
    const url = inject('redisUrl');
    expect(url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
    expect(url).not.toBe('redis://127.0.0.1:6379');
    const redis = new Redis(url, { lazyConnect: true });
    await redis.connect();
    expect(await redis.ping()).toBe('PONG');
    await redis.quit();
  });
});
