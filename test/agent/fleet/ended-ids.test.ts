/**
 * The fleet's memory of ended session ids, on the run's real Redis with real coordinators: a
 * client-chosen id (header affinity) whose session ended anywhere in the fleet is refused as a new
 * session by every agent for one session lifetime, then forgotten; the memory is capped; sessions
 * that merely moved (handed off, adopted) are not ended, sessions lost with their owner are.
 */
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { AgentError } from '../../../agent/core/errors.js';
import { fleetKeys } from '../../../agent/fleet/keys.js';
import type { Placement } from '../../../agent/fleet/types.js';
import { inspector, sleep, startAgents, type TestAgent, waitFor } from './helpers.js';

const url = inject('redisUrl');
let plain: Redis;
let running: Array<{ stop(): Promise<void> }> = [];

beforeAll(async () => {
  plain = await inspector(url);
});
afterAll(async () => {
  await plain.quit();
});
afterEach(async () => {
  await Promise.all(running.map((r) => r.stop()));
  running = [];
});

async function fleetOf(
  policy: Record<string, unknown> = {},
  coordinator: Parameters<typeof startAgents>[1]['coordinator'] = {},
) {
  const started = await startAgents(['a', 'b'], {
    url,
    policy: { sessionsPerInstance: 10, maxInstances: 5, ...policy },
    coordinator,
  });
  running.push(started);
  const [a, b] = started.agents as [TestAgent, TestAgent];
  return { a, b, keys: fleetKeys({ fleet: started.fleet }) };
}

/** Opens session `id` on `agent` as a header-affinity front does: placed under its id, then opened. */
async function openOn(agent: TestAgent, id: string): Promise<void> {
  const placement = await agent.coordinator.place({ sessionId: id });
  expect(placement.kind).toBe('local');
  await agent.coordinator.open(placement, id);
}

/** Ends `id` on its owner and waits until the registry has recorded the end. */
async function endOn(agent: TestAgent, id: string, reason: 'deleted' | 'terminated'): Promise<void> {
  expect(agent.context.sessions.end(id, reason)).toBe(true);
  await waitFor(`the end of ${id} in the registry`, async () => !(await agent.coordinator.registry.get(id)));
}

/** What `place()` of a client-chosen id answers: the placement, or the refusal's code and body fields. */
async function placeId(agent: TestAgent, id: string): Promise<Placement | { code: string; details: unknown }> {
  try {
    return await agent.coordinator.place({ sessionId: id });
  } catch (error) {
    if (!(error instanceof AgentError)) throw error;
    return { code: error.code, details: error.details };
  }
}

describe('the fleet’s memory of ended session ids', () => {
  it('refuses an ended id on every agent for one session lifetime, then forgets it (and the sweep trims it)', async () => {
    // No janitor run of its own during the test: the checks must forget by themselves.
    const { a, b, keys } = await fleetOf(
      { sessionLifetimeSeconds: 2, sessionIdleTimeoutSeconds: 0 },
      { sweepIntervalMs: 60_000 },
    );
    await openOn(a, 'x');
    await openOn(a, 'y');
    await endOn(a, 'x', 'deleted');
    await endOn(a, 'y', 'deleted');

    // Remembered one lifetime from its end, by the Redis clock.
    const [seconds] = await plain.time();
    const forgetAt = Number(await plain.zscore(keys.ended, 'y'));
    expect(forgetAt - Number(seconds) * 1000).toBeGreaterThan(1000);
    expect(forgetAt - Number(seconds) * 1000).toBeLessThanOrEqual(3000);
    expect(await plain.hget(keys.endedReasons, 'x')).toBe('deleted');

    // Through the other agent: the single agent's answer, and nothing reserved.
    expect(await placeId(b, 'x')).toEqual({ code: 'SESSION_EXPIRED', details: { reason: 'deleted' } });
    expect(await plain.hlen(keys.reservations)).toBe(0);
    expect(await b.coordinator.registry.endedReason('x')).toBe('deleted');

    // A lifetime later it is forgotten: placement takes the id again (and drops the stale entry)...
    await waitFor('the ends to be a lifetime old', async () => {
      const [s] = await plain.time();
      return Number(s) * 1000 > forgetAt;
    });
    expect(await b.coordinator.registry.endedReason('x')).toBeUndefined();
    const again = await placeId(b, 'x');
    expect(again).toMatchObject({ kind: 'local' });
    await b.coordinator.open(again as Placement, 'x');
    expect((await b.coordinator.registry.get('x'))?.owner).toBe('b');
    expect(await plain.zrange(keys.ended, 0, -1)).toEqual(['y']);
    // ... and the sweep removes what nobody asked about.
    const swept = await b.coordinator.registry.sweep({ idleMs: 0, graceMs: 60_000, budget: 100 });
    expect(swept.endedForgotten).toBe(1);
    expect(await plain.zcard(keys.ended)).toBe(0);
    expect(await plain.hlen(keys.endedReasons)).toBe(0);
  });

  it('keeps at most endedIdsCap ids, forgetting the oldest first', async () => {
    const { a, b, keys } = await fleetOf({}, { endedIdsCap: 3 });
    for (const id of ['e1', 'e2', 'e3', 'e4', 'e5']) {
      await openOn(a, id);
      await endOn(a, id, 'terminated');
      await sleep(3); // distinct end times, so "oldest" is unambiguous
    }
    expect(await plain.zrange(keys.ended, 0, -1)).toEqual(['e3', 'e4', 'e5']);
    expect((await plain.hkeys(keys.endedReasons)).sort()).toEqual(['e3', 'e4', 'e5']);
    for (const id of ['e3', 'e4', 'e5'])
      expect(await placeId(b, id)).toEqual({ code: 'SESSION_EXPIRED', details: { reason: 'terminated' } });
    // Past the cap, an ended id is a new id again (the bound is what the cap costs).
    expect(await placeId(b, 'e1')).toMatchObject({ kind: 'local' });
  });

  it('a session handed off and adopted elsewhere did not end; one abandoned after its owner left did', async () => {
    const { a, b, keys } = await fleetOf({ sharedSessionState: true });
    await openOn(a, 'moved');
    await openOn(a, 'lost');
    for (const id of ['moved', 'lost']) {
      expect(a.context.sessions.end(id, 'drained')).toBe(true);
      await waitFor(`the hand-off of ${id}`, async () => (await a.coordinator.registry.get(id))?.owner === undefined);
    }
    expect(await plain.zcard(keys.ended)).toBe(0);

    const adopted = await b.coordinator.route('moved');
    expect(adopted.kind).toBe('adopt');
    await b.coordinator.adopt('moved');
    const abandoned = await b.coordinator.route('lost');
    expect(abandoned.kind).toBe('adopt');
    await b.coordinator.abandon('lost');

    expect(await plain.zrange(keys.ended, 0, -1)).toEqual(['lost']);
    expect(await placeId(a, 'lost')).toEqual({ code: 'SESSION_NOT_FOUND', details: {} });
  });

  it('route() through another agent says how the session ended', async () => {
    const { a, b } = await fleetOf();
    await openOn(a, 'ended-on-a');
    await endOn(a, 'ended-on-a', 'terminated');
    expect(await b.coordinator.route('ended-on-a')).toEqual({ kind: 'gone', reason: 'terminated' });
    expect(await b.coordinator.route('never-seen')).toEqual({ kind: 'gone', reason: 'unknown' });
    // The same answer from the agent that ended it.
    expect(await a.coordinator.route('ended-on-a')).toEqual({ kind: 'gone', reason: 'terminated' });
  });

  it('a non-resumable session lost with its dead owner is remembered (as an unknown id answers)', async () => {
    const { a, b } = await fleetOf();
    await openOn(a, 'orphan');
    a.crash();
    await waitFor('the owner’s lease to lapse', async () => {
      const route = await b.coordinator.route('orphan');
      return route.kind === 'gone' ? route : false;
    });
    expect(await b.coordinator.registry.endedReason('orphan')).toBe('owner-lost');
    expect(await placeId(b, 'orphan')).toEqual({ code: 'SESSION_NOT_FOUND', details: {} });
  });

  it('open() refuses a client-chosen id that ended after it was placed, atomically with the reservation', async () => {
    const { a, b, keys } = await fleetOf();
    // b places 'race' first; meanwhile a session under the same id is opened on a and ends.
    const late = await b.coordinator.place({ sessionId: 'race' });
    await openOn(a, 'race');
    await endOn(a, 'race', 'deleted');
    await expect(b.coordinator.open(late, 'race')).rejects.toMatchObject({
      code: 'SESSION_EXPIRED',
      details: { reason: 'deleted' },
    });
    expect(b.context.sessions.get('race')).toBeUndefined();
    expect(await b.coordinator.registry.get('race')).toBeUndefined();
    expect(await plain.hlen(keys.reservations)).toBe(0);
    // A placement that did not name the id (the server or the agent picks ids) is not checked.
    const unnamed = await b.coordinator.place({});
    await b.coordinator.open(unnamed, 'race');
    expect((await b.coordinator.registry.get('race'))?.owner).toBe('b');
    // ... and a live session is no ended one.
    expect(await b.coordinator.registry.endedReason('race')).toBeUndefined();
  });

  it('open() refusing an id whose owner was lost leaves this agent answering as every other agent does', async () => {
    const { a, b } = await fleetOf();
    const late = await b.coordinator.place({ sessionId: 'lost-race' });
    await openOn(a, 'lost-race');
    a.crash();
    await waitFor('the owner’s lease to lapse', async () => {
      const route = await b.coordinator.route('lost-race');
      return route.kind === 'gone' ? route : false;
    });
    await expect(b.coordinator.open(late, 'lost-race')).rejects.toMatchObject({ code: 'SESSION_NOT_FOUND' });
    // Not remembered here under a reason of its own ("terminated by an operator"): the fleet's
    // memory answers it, here as on any agent.
    expect(b.context.sessions.lookup('lost-race')).toEqual({ state: 'unknown' });
    expect(await placeId(b, 'lost-race')).toEqual({ code: 'SESSION_NOT_FOUND', details: {} });
  });
});
