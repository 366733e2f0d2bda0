/**
 * The body rule of the HTTP front (ADR 0023, `agent/http/body-gate.ts`): the pace arithmetic, and
 * a gated body read from a real stream under a clock the test moves.
 */
import type { IncomingMessage } from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BodyWatch, GatedBody, nextDeadline } from '../../../agent/http/body-gate.js';

const PACE = { idleMs: 1000, minBytesPerSecond: 100 };

function setup(pace = PACE) {
  let now = 0;
  const watch = new BodyWatch(pace, () => now, false);
  const req = new PassThrough();
  const slow: number[] = [];
  const body = new GatedBody(req as unknown as IncomingMessage, watch, (b) => slow.push(b.received));
  return {
    watch,
    req,
    body,
    slow,
    at(ms: number) {
      now = ms;
      watch.sweep(ms);
    },
    set now(ms: number) {
      now = ms;
    },
  };
}

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('the pace rule', () => {
  it('buys 1/minRate s per byte, never more than the idle timeout ahead of the clock', () => {
    // 50 bytes at t=0 buy 0.5 s on top of the initial deadline, capped at now + idle.
    expect(nextDeadline(1000, 0, 50, PACE)).toBe(1000);
    expect(nextDeadline(200, 0, 50, PACE)).toBe(700);
    // A late chunk does not rescue a late body: its deadline stays behind the clock.
    expect(nextDeadline(500, 800, 10, PACE)).toBe(600);
  });

  it('lets a body at the minimum rate run forever and ends a trickle after about the idle timeout', () => {
    let steady = 1000;
    for (let t = 100; t <= 60_000; t += 100) {
      steady = nextDeadline(steady, t, 10, PACE); // 100 bytes/s
      expect(steady).toBeGreaterThan(t);
    }
    let trickle = 1000;
    let t = 0;
    while (trickle > t) {
      t += 1000 / 2; // 2 bytes/s, one byte a chunk
      if (trickle > t) trickle = nextDeadline(trickle, t, 1, PACE);
    }
    expect(t).toBeLessThanOrEqual(1500);
  });
});

describe('a gated body', () => {
  it('reads a body within the bound whole: bytes, nothing streamed', async () => {
    const { req, body, watch } = setup();
    const filled = body.fill(16);
    req.end(Buffer.from('0123456789abcdef')); // exactly the bound
    expect(await filled).toBe(true);
    expect(body.isComplete).toBe(true);
    expect(body.forwardable()).toEqual(Buffer.from('0123456789abcdef'));
    expect(watch.watching).toBe(0);
  });

  it('stops at the bound for a longer body and streams what was read and the rest, intact', async () => {
    const { req, body } = setup();
    const filled = body.fill(16);
    req.write(Buffer.from('0123456789abcdefX')); // one byte over
    expect(await filled).toBe(true);
    expect(body.isComplete).toBe(false);
    const forwarded = body.forwardable();
    expect(forwarded).toBeInstanceOf(Readable);
    const all = drain(forwarded as Readable);
    req.end(Buffer.from('the rest'));
    expect((await all).toString()).toBe('0123456789abcdefXthe rest');
  });

  it('peeks further than the bound before anything streams, and still forwards everything', async () => {
    const { req, body } = setup();
    const filled = body.fill(4);
    req.write('0123456789');
    expect(await filled).toBe(true);
    const stream = body.forwardable() as Readable; // created, not read yet
    const peeked = body.peek(1024);
    req.end('abc');
    expect(await peeked).toEqual({ bytes: Buffer.from('0123456789abc'), complete: true });
    expect((await drain(stream)).toString()).toBe('0123456789abc');
  });

  it('ends a stalled body with its handler, and its fill with false', async () => {
    const t = setup();
    const filled = t.body.fill(16);
    t.req.write('01');
    await tick();
    t.at(999);
    expect(t.slow).toEqual([]);
    t.at(1001);
    expect(t.slow).toEqual([2]);
    expect(await filled).toBe(false);
    expect(t.watch.watching).toBe(0);
  });

  it('ends a trickle of one byte a second although it never stalls for the idle timeout', async () => {
    const t = setup({ idleMs: 3000, minBytesPerSecond: 1024 });
    const filled = t.body.fill(1024);
    let ms = 0;
    while (t.slow.length === 0 && ms < 10_000) {
      ms += 1000;
      t.now = ms;
      t.req.write('x');
      await tick();
      t.at(ms + 1);
    }
    expect(t.slow.length).toBe(1);
    expect(ms).toBeLessThanOrEqual(4000);
    expect(await filled).toBe(false);
  });

  it('never holds against a body the time the agent keeps it paused', async () => {
    const t = setup();
    const filled = t.body.fill(4);
    t.req.write('0123456789');
    expect(await filled).toBe(true);
    // Paused by the gate (admission, the fleet, the upstream's backpressure): far past any deadline.
    t.at(60_000);
    expect(t.slow).toEqual([]);
    // Read again: the body has the idle timeout from then on.
    const all = drain(t.body.forwardable() as Readable);
    await tick();
    t.at(60_500);
    expect(t.slow).toEqual([]);
    t.at(61_100);
    expect(t.slow).toEqual([10]);
    t.req.destroy();
    void all.catch(() => {});
  });

  it('forgets a body whose client went away', async () => {
    const t = setup();
    const filled = t.body.fill(16);
    t.req.destroy();
    expect(await filled).toBe(false);
    expect(t.watch.watching).toBe(0);
  });
});
