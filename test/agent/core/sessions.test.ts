import { afterEach, describe, expect, it } from 'vitest';
import { type EndReason, type Session, SessionTable } from '../../../agent/core/sessions.js';

const base = {
  sessionsPerInstance: 3,
  sessionLifetimeSeconds: 100,
  sessionIdleTimeoutSeconds: 10,
  evictionPolicy: 'reject' as 'reject' | 'lru',
};

let tables: SessionTable[] = [];
afterEach(() => {
  for (const t of tables) t.close();
  tables = [];
});

function table(policy: Partial<typeof base> = {}) {
  const clock = { t: 1_000_000 };
  const ended: Array<[string, EndReason]> = [];
  const t = new SessionTable({
    policy: { ...base, ...policy },
    now: () => clock.t,
    sweepIntervalMs: 60_000,
    onEnd: (s: Session, r) => ended.push([s.id, r]),
  });
  tables.push(t);
  return { t, clock, ended };
}

describe('SessionTable', () => {
  it('holds at most sessionsPerInstance sessions and frees a slot on delete', () => {
    const { t, ended } = table();
    for (const id of ['a', 'b', 'c']) expect(t.create(id).ok).toBe(true);
    expect(t.create('d')).toEqual({ ok: false, reason: 'full' });
    expect(t.canAccept()).toBe(false);
    expect(t.end('b', 'deleted')).toBe(true);
    expect(t.create('d').ok).toBe(true);
    expect(ended).toEqual([['b', 'deleted']]);
    expect(t.lookup('b')).toEqual({ state: 'ended', reason: 'deleted' });
  });

  it('discards a session whose creation failed: its slot is free, no end is reported, the id is not remembered', () => {
    const { t, ended } = table({ sessionsPerInstance: 1 });
    expect(t.create('a').ok).toBe(true);
    expect(t.discard('a')).toBe(true);
    expect(t.discard('a')).toBe(false);
    expect(ended).toEqual([]);
    expect(t.lookup('a')).toEqual({ state: 'unknown' });
    expect(t.create('b').ok).toBe(true);
  });

  it('refuses a duplicate id', () => {
    const { t } = table();
    t.create('a');
    expect(t.create('a')).toEqual({ ok: false, reason: 'exists' });
  });

  it('ends a session at its absolute lifetime even while it is busy', () => {
    const { t, clock, ended } = table();
    const created = t.create('a');
    if (!created.ok) throw new Error('not created');
    t.openStream(created.session);
    clock.t += 99_999;
    expect(t.lookup('a').state).toBe('active');
    clock.t += 1;
    expect(t.lookup('a')).toEqual({ state: 'ended', reason: 'expired-lifetime' });
    expect(ended).toEqual([['a', 'expired-lifetime']]);
  });

  it('ends an idle session, but never one with a request in flight or an open stream', () => {
    const { t, clock } = table();
    const a = t.create('a');
    const b = t.create('b');
    const c = t.create('c');
    if (!a.ok || !b.ok || !c.ok) throw new Error('not created');
    t.beginRequest(b.session);
    t.openStream(c.session);
    clock.t += 10_000;
    t.sweep();
    expect(t.lookup('a')).toEqual({ state: 'ended', reason: 'expired-idle' });
    expect(t.lookup('b').state).toBe('active');
    expect(t.lookup('c').state).toBe('active');
    t.endRequest(b.session);
    t.closeStream(c.session);
    clock.t += 9_999;
    t.sweep();
    expect(t.size).toBe(2);
    clock.t += 1;
    t.sweep();
    expect(t.size).toBe(0);
  });

  it('activity resets the idle clock', () => {
    const { t, clock } = table();
    const a = t.create('a');
    if (!a.ok) throw new Error('not created');
    clock.t += 9_000;
    t.touch(a.session);
    clock.t += 9_000;
    expect(t.lookup('a').state).toBe('active');
  });

  it('an idle timeout of 0 turns idle expiry off', () => {
    const { t, clock } = table({ sessionIdleTimeoutSeconds: 0 });
    t.create('a');
    clock.t += 99_000;
    expect(t.lookup('a').state).toBe('active');
  });

  it('with LRU eviction, a full table evicts its least recently used idle session', () => {
    const { t, clock, ended } = table({ evictionPolicy: 'lru' });
    const a = t.create('a');
    t.create('b');
    t.create('c');
    if (!a.ok) throw new Error('not created');
    clock.t += 1;
    t.touch(a.session);
    const d = t.create('d');
    expect(d.ok && d.evicted?.id).toBe('b');
    expect(ended).toEqual([['b', 'evicted']]);
    expect(t.list().map((s) => s.id)).toEqual(['c', 'a', 'd']);
  });

  it('without LRU, a full table evicts the least recently used session idle past evictIdleAfterSeconds, and only such a one', () => {
    // Idle timeout 1800 s, as by default: a client that never ends its session would hold the slot that long.
    const { t, clock, ended } = table({
      sessionLifetimeSeconds: 21600,
      sessionIdleTimeoutSeconds: 1800,
      ...{ limits: { evictIdleAfterSeconds: 120 } },
    });
    const a = t.create('a');
    t.create('b');
    const c = t.create('c');
    if (!a.ok || !c.ok) throw new Error('not created');
    t.openStream(c.session);
    clock.t += 119_000;
    // Nobody has been idle 120 s yet: the instance is full.
    expect(t.create('d')).toEqual({ ok: false, reason: 'full' });
    expect(t.canAccept()).toBe(false);
    t.touch(a.session);
    clock.t += 1_000;
    // b is idle 120 s; a was used a second ago; c holds an open stream.
    expect(t.canAccept()).toBe(true);
    const d = t.create('d');
    expect(d.ok && d.evicted?.id).toBe('b');
    expect(ended).toEqual([['b', 'evicted']]);
    expect(t.create('e')).toEqual({ ok: false, reason: 'full' });
  });

  it('never evicts a session that is busy', () => {
    const { t } = table({ evictionPolicy: 'lru' });
    for (const id of ['a', 'b', 'c']) {
      const r = t.create(id);
      if (r.ok) t.beginRequest(r.session);
    }
    expect(t.create('d')).toEqual({ ok: false, reason: 'full' });
  });

  it('takes no new session while draining', () => {
    const { t } = table();
    t.startDraining();
    expect(t.create('a')).toEqual({ ok: false, reason: 'draining' });
    expect(t.canAccept()).toBe(false);
  });

  it('keeps an id that reached its lifetime ended for one more lifetime, so the client cannot reuse it', () => {
    const { t, clock } = table();
    t.create('a');
    clock.t += 100_000;
    t.sweep();
    expect(t.lookup('a')).toEqual({ state: 'ended', reason: 'expired-lifetime' });
    clock.t += 99_999;
    t.sweep();
    expect(t.lookup('a')).toEqual({ state: 'ended', reason: 'expired-lifetime' });
    clock.t += 1;
    t.sweep();
    expect(t.lookup('a')).toEqual({ state: 'unknown' });
  });

  it('tells an ended id from an unknown one, and forgets it one lifetime after it ended', () => {
    const { t, clock } = table();
    t.create('a');
    t.end('a', 'deleted');
    expect(t.lookup('a')).toEqual({ state: 'ended', reason: 'deleted' });
    expect(t.lookup('zzz')).toEqual({ state: 'unknown' });
    clock.t += 100_000;
    t.sweep();
    expect(t.lookup('a')).toEqual({ state: 'unknown' });
    expect(t.rememberedCount).toBe(0);
  });

  it('10,000 sessions created and expired leave nothing behind', () => {
    const { t, clock, ended } = table({ sessionsPerInstance: 200 });
    for (let i = 0; i < 10_000; i++) {
      const r = t.create(`s${i}`);
      expect(r.ok).toBe(true);
      if (i % 200 === 199) {
        clock.t += 10_000;
        t.sweep();
      }
    }
    clock.t += 200_000;
    t.sweep();
    expect(t.size).toBe(0);
    expect(ended).toHaveLength(10_000);
    expect(t.rememberedCount).toBe(0);
  });

  it('bounds how many ended ids it remembers', () => {
    const clock = { t: 0 };
    const t = new SessionTable({ policy: { ...base, sessionsPerInstance: 10 }, now: () => clock.t, maxRemembered: 5 });
    tables.push(t);
    for (let i = 0; i < 20; i++) {
      t.create(`s${i}`);
      t.end(`s${i}`, 'deleted');
    }
    expect(t.rememberedCount).toBe(5);
    expect(t.lookup('s19').state).toBe('ended');
    expect(t.lookup('s0').state).toBe('unknown');
  });

  it('sweeps on its own timer, one timer per table', async () => {
    const ended: string[] = [];
    const t = new SessionTable({
      policy: { ...base, sessionIdleTimeoutSeconds: 1, sessionLifetimeSeconds: 1 },
      sweepIntervalMs: 20,
      onEnd: (s) => ended.push(s.id),
    });
    tables.push(t);
    t.create('a');
    await new Promise((r) => setTimeout(r, 1200));
    expect(ended).toEqual(['a']);
  });
});
