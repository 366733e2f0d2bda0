/**
 * Routing and failover on the run's real Redis: where a request for a session goes, re-homing
 * when the owner died (a real process killed with SIGKILL), hand-off while draining.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { fleetKeys } from '../../../agent/fleet/keys.js';
import type { Placement } from '../../../agent/fleet/types.js';
import { REPO_ROOT } from '../../helpers/run.js';
import { inspector, sleep, startAgents, type TestAgent, uniqueFleet, waitFor } from './helpers.js';

const url = inject('redisUrl');
let plain: Redis;
let running: Array<{ stop(): Promise<void> }> = [];
const children = new Set<ChildProcess>();

beforeAll(async () => {
  plain = await inspector(url);
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await plain.quit();
});
afterEach(async () => {
  await Promise.all(running.map((r) => r.stop()));
  running = [];
});

async function fleetOf(ids: string[], policy = {}, fleet?: string) {
  const started = await startAgents(ids, {
    url,
    ...(fleet ? { fleet } : {}),
    policy: { sessionsPerInstance: 3, maxInstances: 5, ...policy },
  });
  running.push(started);
  return started;
}

async function create(agents: TestAgent[], from: TestAgent, id: string): Promise<Placement> {
  const placement = await from.coordinator.place({ principal: 'alice' });
  const owner = placement.kind === 'local' ? from : agents.find((a) => a.id === placement.instanceId)!;
  await owner.coordinator.open(placement.kind === 'local' ? placement : { reservationId: placement.reservationId }, id);
  return placement;
}

/** A fleet member in its own process, holding `count` sessions; resolves with their ids. */
function member(
  fleet: string,
  id: string,
  resumable: boolean,
  count: number,
): Promise<{ proc: ChildProcess; ids: string[] }> {
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join('test/agent/fleet/fixtures/fleet-member.ts'),
      url,
      fleet,
      id,
      resumable ? '1' : '0',
      String(count),
    ],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve({ proc, ids: (JSON.parse(line) as { ids: string[] }).ids });
    });
    proc.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    proc.on('exit', (code) => reject(new Error(`fleet member exited (${code}): ${err}`)));
  });
}

describe('routing', () => {
  it('routes to the owner: locally without Redis, remotely from the registry, then from the cache', async () => {
    const { agents } = await fleetOf(['agent-a', 'agent-b']);
    const [a, b] = agents as [TestAgent, TestAgent];
    await create(agents, b, 'on-b');
    expect(await b.coordinator.route('on-b')).toMatchObject({
      kind: 'local',
      session: { id: 'on-b', principal: 'alice' },
    });
    expect(await a.coordinator.route('on-b')).toEqual({
      kind: 'remote',
      instanceId: 'agent-b',
      advertise: 'http://127.0.0.1:41001/',
      via: 'registry',
    });
    expect(await a.coordinator.route('on-b')).toMatchObject({ kind: 'remote', via: 'cache' });
    a.coordinator.forget('on-b');
    expect(await a.coordinator.route('on-b')).toMatchObject({ kind: 'remote', via: 'registry' });
  });

  it('answers gone for unknown, deleted and expired sessions', async () => {
    const { agents } = await fleetOf(['agent-a', 'agent-b'], {
      sessionLifetimeSeconds: 1,
      sessionIdleTimeoutSeconds: 0,
    });
    const [a, b] = agents as [TestAgent, TestAgent];
    expect(await a.coordinator.route('never-seen')).toEqual({ kind: 'gone', reason: 'unknown' });
    await create(agents, b, 'deleted');
    b.context.sessions.end('deleted', 'deleted');
    expect(await b.coordinator.route('deleted')).toEqual({ kind: 'gone', reason: 'deleted' });
    await waitFor('the registry to forget it', async () => (await a.coordinator.route('deleted')).kind === 'gone');
    await create(agents, b, 'short-lived');
    await sleep(1100);
    expect(await b.coordinator.route('short-lived')).toEqual({ kind: 'gone', reason: 'expired-lifetime' });
    expect(await a.coordinator.route('short-lived')).toMatchObject({ kind: 'gone' });
  });

  it('re-homes a resumable session when its owner is killed with SIGKILL, exactly once', async () => {
    const fleet = uniqueFleet();
    const { agents } = await fleetOf(['agent-a', 'agent-b'], { sharedSessionState: true }, fleet);
    const [a, b] = agents as [TestAgent, TestAgent];
    const { proc, ids } = await member(fleet, 'agent-c', true, 3);
    const [first, second, third] = ids as [string, string, string];
    expect(await a.coordinator.route(first)).toMatchObject({ kind: 'remote', instanceId: 'agent-c' });
    proc.kill('SIGKILL');

    // Within the lease the dead owner is still trusted; after it, two agents race for the session:
    // one adopts it (resumes it upstream), the other is sent to the adopter.
    const routes = await waitFor('the lease to lapse', async () => {
      a.coordinator.forget(first);
      b.coordinator.forget(first);
      const [ra, rb] = await Promise.all([a.coordinator.route(first), b.coordinator.route(first)]);
      return ra.kind === 'adopt' || rb.kind === 'adopt' ? [ra, rb] : false;
    });
    const adopters = routes.filter((r) => r.kind === 'adopt');
    expect(adopters).toHaveLength(1);
    const adopter = routes[0]!.kind === 'adopt' ? a : b;
    const other = adopter === a ? b : a;
    expect(routes.find((r) => r.kind === 'remote')).toMatchObject({ instanceId: adopter.id });
    expect(adopters[0]).toMatchObject({ record: { id: first, principal: 'alice', resumable: true } });

    // The front resumed it upstream and adopts it; its lifetime still counts from its creation.
    const session = await adopter.coordinator.adopt(first);
    const adopted = adopters[0]!;
    expect(session.createdAt).toBe(adopted.kind === 'adopt' ? adopted.record.createdAt : undefined);
    expect(await adopter.coordinator.route(first)).toMatchObject({ kind: 'local' });
    other.coordinator.forget(first);
    expect(await other.coordinator.route(first)).toMatchObject({ kind: 'remote', instanceId: adopter.id });

    // A resume that fails upstream gives the session up: the client starts anew.
    const failed = await a.coordinator.route(second);
    if (failed.kind === 'adopt') await a.coordinator.abandon(second);
    else expect(failed).toMatchObject({ kind: 'remote' });
    // Two requests for the same session on one agent resume it only once.
    const r1 = await b.coordinator.route(third);
    expect(r1.kind).toBe('adopt');
    const r2 = b.coordinator.route(third); // arrives while the first one is resuming it
    await sleep(20);
    expect((await b.coordinator.adopt(third)).id).toBe(third);
    expect(await r2).toMatchObject({ kind: 'local' });
  });

  it('ends a non-resumable session when its owner dies: the client gets the expired status', async () => {
    const fleet = uniqueFleet();
    const { agents } = await fleetOf(['agent-a'], { sharedSessionState: false }, fleet);
    const [a] = agents as [TestAgent];
    const { proc, ids } = await member(fleet, 'agent-c', false, 1);
    proc.kill('SIGKILL');
    const gone = await waitFor('the lease to lapse', async () => {
      a.coordinator.forget(ids[0]!);
      const route = await a.coordinator.route(ids[0]!);
      return route.kind === 'gone' ? route : false;
    });
    expect(gone).toEqual({ kind: 'gone', reason: 'owner-lost' });
    expect(await plain.hexists(fleetKeys({ fleet }).sessions, ids[0]!)).toBe(0);
  });

  it('hands resumable sessions off while draining, as soon as their in-flight work ends', async () => {
    const { agents } = await fleetOf(['agent-a', 'agent-b'], { sharedSessionState: true });
    const [a, b] = agents as [TestAgent, TestAgent];
    await create(agents, b, 'idle');
    await create(agents, b, 'busy');
    const busy = b.context.sessions.get('busy')!;
    b.context.sessions.beginRequest(busy);
    await b.coordinator.startDraining();
    await waitFor('the idle session to leave', () => !b.context.sessions.get('idle'));
    expect(b.context.ended).toContainEqual(['idle', 'drained']);
    expect(b.context.sessions.get('busy')).toBeDefined();
    expect(await a.coordinator.route('idle')).toMatchObject({ kind: 'adopt' });
    await a.coordinator.adopt('idle');
    // Its request finished: now it goes too, and the next request resumes it on a live instance.
    b.context.sessions.endRequest(busy);
    await waitFor('the busy session to leave', () => !b.context.sessions.get('busy'));
    expect(await b.coordinator.route('busy')).toMatchObject({ kind: 'remote', instanceId: 'agent-a' });
  });

  it('leaves the fleet at once on a graceful stop: what it still held is resumed elsewhere right away', async () => {
    const fleet = uniqueFleet();
    const { agents } = await fleetOf(['agent-a'], { sharedSessionState: true }, fleet);
    const [a] = agents as [TestAgent];
    const leaving = await startAgents(['agent-b'], {
      url,
      fleet,
      policy: { sessionsPerInstance: 3, sharedSessionState: true },
    });
    const b = leaving.agents[0]!;
    await create([a, b], b, 'left-behind');
    await leaving.stop();
    expect(await a.coordinator.route('left-behind')).toMatchObject({ kind: 'adopt' });
    expect((await a.coordinator.listInstances()).find((i) => i.id === 'agent-b')?.alive).toBe(false);
  });

  it('takes on a hop only a session the registry gives it: re-homed there, never one held or orphaned elsewhere', async () => {
    const fleet = uniqueFleet();
    const policy = { sessionsPerInstance: 1, sharedSessionState: true };
    const { agents } = await fleetOf(['agent-a', 'agent-b', 'agent-c'], policy, fleet);
    const [a, b, c] = agents as [TestAgent, TestAgent, TestAgent];
    const leaving = await startAgents(['agent-x'], { url, fleet, policy });
    const x = leaving.agents[0]!;
    // a and b full, c empty; x holds the session under test.
    await create([a, b, c, x], a, 'on-a');
    await create([a, b, c, x], b, 'on-b');
    await create([a, b, c, x], x, 'orphan');
    const sessions = fleetKeys({ fleet }).sessions;

    // Held here: local. Held by a live instance, or unknown: not this one's, and nothing moves.
    expect(await b.coordinator.routeHop('on-b')).toMatchObject({ kind: 'local', session: { id: 'on-b' } });
    expect(await c.coordinator.routeHop('on-b')).toEqual({ kind: 'not-owner' });
    expect(JSON.parse((await plain.hget(sessions, 'on-b'))!)).toMatchObject({ o: 'agent-b' });
    expect(await c.coordinator.routeHop('never-seen')).toEqual({ kind: 'not-owner' });

    // Its owner gone, the session is anyone's to re-home; a hop that reaches c is not what decides.
    await leaving.stop();
    const orphaned = await plain.hget(sessions, 'orphan');
    expect(await c.coordinator.routeHop('orphan')).toEqual({ kind: 'not-owner' });
    expect(await plain.hget(sessions, 'orphan')).toBe(orphaned);

    // b, which has no room, routes it: the registry moves it to c, the one instance with a slot.
    expect(await b.coordinator.route('orphan')).toMatchObject({ kind: 'remote', instanceId: 'agent-c' });
    expect(JSON.parse((await plain.hget(sessions, 'orphan'))!)).toMatchObject({ o: 'agent-c' });
    // The hop b then sends to c: c adopts it, and holds it from then on.
    expect(await c.coordinator.routeHop('orphan')).toMatchObject({
      kind: 'adopt',
      record: { id: 'orphan', owner: 'agent-c', principal: 'alice', resumable: true },
    });
    await c.coordinator.adopt('orphan');
    expect(await c.coordinator.routeHop('orphan')).toMatchObject({ kind: 'local', session: { id: 'orphan' } });
    expect(JSON.parse((await plain.hget(sessions, 'orphan'))!)).toMatchObject({ o: 'agent-c' });
  });

  it('gives an owner that comes back after its lease lapsed only what is still its own', async () => {
    const { agents } = await fleetOf(['agent-a', 'agent-b'], { sharedSessionState: true });
    const [a, b] = agents as [TestAgent, TestAgent];
    await create(agents, b, 'moved');
    await create(agents, b, 'kept');
    // b stalls (no heartbeat) past its lease; a takes one of its sessions meanwhile.
    await b.pauseHeartbeat(1300);
    expect(await a.coordinator.route('moved')).toMatchObject({ kind: 'adopt' });
    await a.coordinator.adopt('moved');
    // b's next heartbeat sees its lease had lapsed and resyncs: it drops its stale copy of 'moved'.
    await b.coordinator.refresh();
    expect(b.context.ended).toContainEqual(['moved', 'terminated']);
    expect(b.context.sessions.get('kept')).toBeDefined();
    expect(await b.coordinator.route('moved')).toMatchObject({ kind: 'remote', instanceId: 'agent-a' });
    expect(await a.coordinator.route('kept')).toMatchObject({ kind: 'remote', instanceId: 'agent-b' });
  });
});
