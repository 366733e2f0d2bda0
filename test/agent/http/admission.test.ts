import { afterEach, describe, expect, it } from 'vitest';
import { InstanceLoad } from '../../../agent/core/load.js';
import { SessionTable } from '../../../agent/core/sessions.js';
import { Admission } from '../../../agent/http/admission.js';

let tables: SessionTable[] = [];
afterEach(() => {
  for (const t of tables) t.close();
  tables = [];
});

function setup(
  options: {
    sessions?: number;
    concurrency?: number;
    eviction?: 'reject' | 'lru';
    idle?: number;
    evictIdle?: number;
  } = {},
) {
  const clock = { t: 1_000_000 };
  const sessions = new SessionTable({
    policy: {
      sessionsPerInstance: options.sessions ?? 2,
      sessionLifetimeSeconds: 100,
      sessionIdleTimeoutSeconds: options.idle ?? 10,
      evictionPolicy: options.eviction ?? 'reject',
      limits: { evictIdleAfterSeconds: options.evictIdle ?? 0 },
    },
    now: () => clock.t,
    sweepIntervalMs: 60_000,
  });
  tables.push(sessions);
  const load = new InstanceLoad(options.concurrency ?? 3);
  const state = { draining: false };
  const admission = new Admission({
    sessions,
    load,
    draining: () => state.draining,
    idleTimeoutSeconds: options.idle ?? 10,
    evictIdleAfterSeconds: options.evictIdle ?? 0,
    now: () => clock.t,
  });
  return { sessions, load, admission, clock, state };
}

function create(admission: Admission, id: string, principal?: string) {
  const reserved = admission.reserve(principal);
  if (!reserved.ok) throw reserved.error;
  const committed = admission.commit(reserved.value, id);
  if (!committed.ok) throw committed.error;
  return committed.value;
}

describe('Admission', () => {
  it('refuses a new session beyond sessionsPerInstance with 429 and a Retry-After to the next idle expiry', () => {
    const { admission, clock, sessions } = setup();
    create(admission, 'a');
    clock.t += 4_000;
    create(admission, 'b');
    const refused = admission.reserve(undefined);
    expect(refused.ok).toBe(false);
    if (refused.ok) return;
    // 'a' idles out 10 s after its last activity, 6 s from now.
    expect(refused.error.toHttpBody(401)).toEqual({
      error: {
        code: 'SESSION_LIMIT_REACHED',
        message: 'this instance holds its maximum of 2 sessions: back off and retry',
        status: 429,
        sessionsPerInstance: 2,
        retryAfterSeconds: 6,
      },
    });
    sessions.end('a', 'deleted');
    expect(admission.reserve(undefined).ok).toBe(true);
  });

  it('with evictIdleAfterSeconds, a full instance answers Retry-After to the soonest idle eviction, then takes the session', () => {
    const { admission, clock } = setup({ idle: 90, evictIdle: 40 });
    create(admission, 'a');
    clock.t += 30_000;
    create(admission, 'b');
    const refused = admission.reserve(undefined);
    // 'a' may be given up 40 s after its last activity, 10 s from now (its idle expiry is 60 s away).
    expect(refused.ok || refused.error.retryAfterSeconds).toBe(10);
    clock.t += 10_000;
    expect(create(admission, 'c').id).toBe('c');
  });

  it('counts reservations, so two initializes in flight cannot both take the last slot', () => {
    const { admission, sessions } = setup();
    create(admission, 'a');
    const first = admission.reserve(undefined);
    expect(first.ok).toBe(true);
    expect(admission.reserve(undefined).ok).toBe(false);
    if (!first.ok) return;
    admission.cancel(first.value);
    admission.cancel(first.value);
    expect(admission.pendingCount).toBe(0);
    expect(admission.reserve(undefined).ok).toBe(true);
    expect(sessions.size).toBe(1);
  });

  it('evicts the least recently used idle session under lru, one reservation at a time', () => {
    const { admission, sessions } = setup({ eviction: 'lru' });
    create(admission, 'a');
    create(admission, 'b');
    const reserved = admission.reserve(undefined);
    expect(reserved.ok).toBe(true);
    if (!reserved.ok) return;
    expect(admission.reserve(undefined).ok).toBe(false);
    expect(admission.commit(reserved.value, 'c').ok).toBe(true);
    expect(sessions.lookup('a')).toEqual({ state: 'ended', reason: 'evicted' });
  });

  it('tells an expired session from an unknown one, and creates unseen ids only when asked to', () => {
    const { admission, clock } = setup();
    create(admission, 'a');
    clock.t += 10_000;
    const expired = admission.existing('a', undefined, 'reject');
    expect(expired.ok).toBe(false);
    if (!expired.ok) {
      expect(expired.error.toJsonRpcError(404)).toEqual({
        code: -32001,
        message: 'Session expired: the session was idle past its timeout: start a new session',
        data: { code: 'SESSION_EXPIRED', status: 404, reason: 'expired-idle' },
      });
    }
    const unknown = admission.existing('zzz', undefined, 'reject');
    expect(unknown.ok).toBe(false);
    if (!unknown.ok) {
      expect(unknown.error.toJsonRpcError(404)).toEqual({
        code: -32001,
        message: 'Session not found: start a new session',
        data: { code: 'SESSION_NOT_FOUND', status: 404 },
      });
    }
    expect(admission.existing('zzz', undefined, 'create')).toEqual({ ok: true, session: undefined });
    // An ended id is never silently reused by header affinity: the client must pick a new one.
    expect(admission.existing('a', undefined, 'create').ok).toBe(false);
  });

  it('answers a dead cookie with INVALID_COOKIE (401) whatever the reason', () => {
    const { admission, sessions } = setup();
    create(admission, 'a');
    sessions.end('a', 'terminated');
    for (const id of ['a', 'never']) {
      const result = admission.existing(id, undefined, 'reject-cookie');
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error.status(404)).toBe(401);
    }
    const dead = admission.existing('a', undefined, 'reject-cookie');
    if (!dead.ok) {
      expect(dead.error.toHttpBody(401)).toEqual({
        error: {
          code: 'INVALID_COOKIE',
          message: 'the session was terminated by an operator: retry without the cookie to get a new one',
          status: 401,
          reason: 'terminated',
        },
      });
    }
  });

  it('binds a session to its principal', () => {
    const { admission } = setup();
    create(admission, 'a', 'alice');
    expect(admission.existing('a', 'alice', 'reject').ok).toBe(true);
    const bob = admission.existing('a', 'bob', 'reject');
    expect(bob.ok).toBe(false);
    if (!bob.ok) {
      expect(bob.error.toHttpBody(401)).toEqual({
        error: {
          code: 'SESSION_FORBIDDEN',
          message: 'this session belongs to another principal: use a session you created',
          status: 403,
        },
      });
    }
    expect(admission.existing('a', undefined, 'reject').ok).toBe(false);
  });

  it('binds a session to its principal in its tenant: a same-named principal of another tenant (or of none) is another user', () => {
    const { admission, sessions } = setup({ sessions: 3 });
    const anotherTenant = {
      code: 'SESSION_FORBIDDEN',
      message: 'this session belongs to another tenant: use a session you created',
      status: 403,
    };
    const refusal = (result: ReturnType<Admission['existing']>) =>
      result.ok ? 'admitted' : result.error.toHttpBody(401).error;
    sessions.create('acme', { principal: 'alice', tenant: 'acme' });
    create(admission, 'none', 'alice');
    expect(admission.existing('acme', 'alice', 'reject', false, 'acme').ok).toBe(true);
    expect(refusal(admission.existing('acme', 'alice', 'reject', false, 'globex'))).toEqual(anotherTenant);
    expect(refusal(admission.existing('acme', 'alice', 'reject', false, undefined))).toEqual(anotherTenant);
    expect(admission.existing('none', 'alice', 'reject', false, undefined).ok).toBe(true);
    expect(refusal(admission.existing('none', 'alice', 'reject', false, 'acme'))).toEqual(anotherTenant);
    // A collaborative session is shared within its tenant only.
    expect(admission.existing('acme', 'bob', 'reject', true, 'acme').ok).toBe(true);
    expect(refusal(admission.existing('none', 'bob', 'reject', true, 'acme'))).toEqual(anotherTenant);
    // A session bound to nobody (no --principal-header) is anyone's, as before.
    sessions.create('open', {});
    expect(admission.existing('open', 'alice', 'reject', false, 'acme').ok).toBe(true);
  });

  it('hands a reservation’s placement to create() on commit and to cancelled() on cancel', () => {
    // The quotas per principal and tenant are the coordinator's (test/agent/fleet/local-coordinator.test.ts):
    // the front places first, then passes the coordinator's open() and cancel() here.
    const sessions = new SessionTable({
      policy: {
        sessionsPerInstance: 5,
        sessionLifetimeSeconds: 100,
        sessionIdleTimeoutSeconds: 10,
        evictionPolicy: 'reject',
      },
      sweepIntervalMs: 60_000,
    });
    tables.push(sessions);
    const opened: Array<[string, unknown]> = [];
    const cancelled: unknown[] = [];
    const admission = new Admission({
      sessions,
      load: new InstanceLoad(3),
      draining: () => false,
      idleTimeoutSeconds: 10,
      create: (id, reservation) => {
        opened.push([id, reservation.fleet]);
        return sessions.create(id, { principal: reservation.principal });
      },
      cancelled: (reservation) => cancelled.push(reservation.fleet),
    });
    const first = { reservationId: 'r1', principal: 'alice' };
    const second = { reservationId: 'r2', principal: 'alice' };
    const a = admission.reserve('alice', first);
    const b = admission.reserve('alice', second);
    if (!a.ok || !b.ok) throw new Error('expected both reservations');
    expect(admission.commit(a.value, 's1')).toMatchObject({ ok: true, value: { id: 's1', principal: 'alice' } });
    admission.cancel(b.value);
    admission.cancel(b.value);
    expect(opened).toEqual([['s1', first]]);
    expect(cancelled).toEqual([second]);
    expect(admission.pendingCount).toBe(0);
  });

  it('refuses new sessions while draining with 503 and Retry-After', () => {
    const { admission, state } = setup();
    state.draining = true;
    const refused = admission.reserve(undefined);
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(refused.error.status(404)).toBe(503);
      expect(refused.error.retryAfterSeconds).toBe(1);
    }
  });

  it('caps requests in flight over all sessions with 429', () => {
    const { admission, load } = setup({ concurrency: 2 });
    expect(admission.acquire()).toBeUndefined();
    expect(admission.acquire()).toBeUndefined();
    const refused = admission.acquire();
    expect(refused?.toHttpBody(404)).toEqual({
      error: {
        code: 'CONCURRENCY_LIMIT_REACHED',
        message: 'this instance is serving 2 requests, its limit: back off and retry',
        status: 429,
        concurrencyPerInstance: 2,
        retryAfterSeconds: 1,
      },
    });
    admission.release();
    expect(load.inFlight).toBe(1);
    expect(admission.acquire()).toBeUndefined();
  });
});
