/**
 * The scale list on the run's real Redis: its length follows the fleet's session demand as
 * sessions open and end on two agents (what KEDA's `redis` scaler reads on Container Apps), under
 * the key the constructs name in the scale rule.
 */
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { fleetKeys } from '../../../agent/fleet/keys.js';
import { FLEET_SCALE_LIST_SUFFIX, fleetKeyPrefix } from '../../../policy/agent-interface.js';
import { inspector, startAgents, type TestAgent, waitFor } from './helpers.js';

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

async function open(agents: TestAgent[], from: TestAgent, id: string): Promise<void> {
  const placement = await from.coordinator.place({});
  const owner = placement.kind === 'local' ? from : agents.find((a) => a.id === placement.instanceId)!;
  await owner.coordinator.open({ reservationId: placement.reservationId }, id);
}

describe('scale list', () => {
  it('has one entry per session of the fleet, follows sessions ending, and goes when none is left', async () => {
    const started = await startAgents(['agent-a', 'agent-b'], { url, policy: { sessionsPerInstance: 2 } });
    running.push(started);
    const [a, b] = started.agents as [TestAgent, TestAgent];
    const key = fleetKeys({ fleet: started.fleet }).scaleDemand;
    expect(key).toBe(`${fleetKeyPrefix(started.fleet)}${FLEET_SCALE_LIST_SUFFIX}`);

    for (const id of ['s1', 's2', 's3']) await open(started.agents, a, id);
    expect(a.context.sessions.size + b.context.sessions.size).toBe(3);
    await waitFor('3 entries', async () => (await plain.llen(key)) === 3);
    expect(await plain.pttl(key)).toBeGreaterThan(0);

    // Ending sessions on either agent shrinks the list to match.
    const onB = b.context.sessions.list()[0]!;
    b.context.sessions.end(onB.id, 'deleted');
    await waitFor('2 entries', async () => (await plain.llen(key)) === 2);

    for (const agent of [a, b])
      for (const s of agent.context.sessions.list()) agent.context.sessions.end(s.id, 'deleted');
    await waitFor('no list', async () => (await plain.exists(key)) === 0);
  });

  it('counts new sessions waiting for capacity, so the fleet scales out when it is full', async () => {
    const started = await startAgents(['agent-a'], { url, policy: { sessionsPerInstance: 1, maxInstances: 3 } });
    running.push(started);
    const [a] = started.agents as [TestAgent];
    const keys = fleetKeys({ fleet: started.fleet });
    await open(started.agents, a, 'only');
    // A waiter as placement records it while no instance has room (the autoscaler's demand).
    await plain.zadd(keys.demand, Date.now() + 60_000, 'waiter-1');
    await waitFor('session + waiter', async () => (await plain.llen(keys.scaleDemand)) === 2);
  });
});
