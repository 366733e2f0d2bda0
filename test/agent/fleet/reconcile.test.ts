/**
 * The reconcile's decision logic after a restart (ADR 0022), apart from Redis and the upstream:
 * which records are asked about, which end whatever the upstream says, which are never touched,
 * and what each answer of the upstream decides.
 */
import { describe, expect, it } from 'vitest';
import { afterAnswer, type PlanFacts, planFor } from '../../../agent/fleet/reconcile.js';
import type { SessionRecord } from '../../../agent/fleet/registry.js';

const NOW = 1_000_000_000;
const MIN = 60_000;

function record(over: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id: 'sess-1',
    owner: 'pod-a',
    principal: 'alice',
    tenant: undefined,
    createdAt: NOW - 10 * MIN,
    expiresAt: NOW + 50 * MIN,
    resumable: false,
    upstreamPath: '/mcp',
    ...over,
  };
}

const facts = (over: Partial<PlanFacts> = {}): PlanFacts => ({
  self: 'pod-a',
  now: NOW,
  idleMs: 30 * MIN,
  heldHere: false,
  lastActiveAt: NOW - MIN,
  ...over,
});

describe('planFor: what the reconcile does with a record before asking the upstream', () => {
  it('asks the upstream about a live session of this instance', () => {
    expect(planFor(record(), facts())).toEqual({ kind: 'ask' });
  });

  it('never touches a session another instance owns by now, nor one handed off (no owner)', () => {
    expect(planFor(record({ owner: 'pod-b' }), facts())).toEqual({ kind: 'leave', why: 'owned-elsewhere' });
    expect(planFor(record({ owner: undefined }), facts())).toEqual({ kind: 'leave', why: 'owned-elsewhere' });
    // Even when its time is up: the owner decides.
    expect(planFor(record({ owner: 'pod-b', expiresAt: NOW - 1 }), facts())).toEqual({
      kind: 'leave',
      why: 'owned-elsewhere',
    });
  });

  it('leaves a session this agent already holds (a second registration after a failed first)', () => {
    expect(planFor(record(), facts({ heldHere: true }))).toEqual({ kind: 'leave', why: 'held-here' });
  });

  it('ends a session past its lifetime, and one idle past the idle timeout, upstream too', () => {
    expect(planFor(record({ expiresAt: NOW }), facts())).toEqual({
      kind: 'end',
      reason: 'expired-lifetime',
      upstream: true,
    });
    const older = record({ createdAt: NOW - 40 * MIN });
    expect(planFor(older, facts({ lastActiveAt: NOW - 30 * MIN }))).toEqual({
      kind: 'end',
      reason: 'expired-idle',
      upstream: true,
    });
    // One minute short of the idle timeout: still asked about.
    expect(planFor(older, facts({ lastActiveAt: NOW - 29 * MIN }))).toEqual({ kind: 'ask' });
  });

  it('counts idle time from creation when no activity was written back, and never idles without a timeout', () => {
    const old = record({ createdAt: NOW - 40 * MIN });
    expect(planFor(old, facts({ lastActiveAt: undefined }))).toMatchObject({ kind: 'end', reason: 'expired-idle' });
    expect(planFor(old, facts({ lastActiveAt: undefined, idleMs: 0 }))).toEqual({ kind: 'ask' });
  });

  it('ends an unusable record (times that make no sense, an id no client could send) or an unreadable one', () => {
    const lost = { kind: 'end', reason: 'owner-lost', upstream: true };
    expect(planFor(record({ createdAt: Number.NaN }), facts())).toEqual(lost);
    expect(planFor(record({ expiresAt: NOW - 20 * MIN }), facts())).toEqual(lost);
    expect(planFor(record({ id: 'bad id with spaces' }), facts())).toEqual(lost);
    expect(planFor(undefined, facts())).toEqual(lost);
  });
});

describe("afterAnswer: what the upstream's answer decides", () => {
  it('adopts what the upstream holds', () => {
    expect(afterAnswer('held', { resumable: false })).toEqual({ kind: 'adopt', outcome: 'adopted' });
  });

  it('ends what it does not know, handing a resumable one off for another instance to resume', () => {
    expect(afterAnswer('gone', { resumable: false })).toEqual({ kind: 'end', mode: 'delete' });
    expect(afterAnswer('gone', { resumable: true })).toEqual({ kind: 'end', mode: 'handoff' });
  });

  it('keeps a session without an answer as held, counted as failed', () => {
    expect(afterAnswer('unanswered', { resumable: false })).toEqual({ kind: 'adopt', outcome: 'failed' });
  });
});
