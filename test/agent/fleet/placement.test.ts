/**
 * Placement across three agents of one fleet on the run's real Redis: SPEC.md §4's table row by
 * row, the fleet-wide quotas, reservations and draining.
 */
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { AgentError } from '../../../agent/core/errors.js';
import { OwnershipConflictError } from '../../../agent/fleet/coordinator.js';
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

async function fleetOf(ids: string[], policy: Parameters<typeof startAgents>[1]['policy'] = {}, coordinator = {}) {
  const started = await startAgents(ids, {
    url,
    policy: { sessionsPerInstance: 2, maxInstances: 3, ...policy },
    coordinator,
  });
  running.push(started);
  return started;
}

/** What a front does with a placement: open here, or (standing in for the forward) on the owner. */
async function create(agents: TestAgent[], from: TestAgent, id: string, request = {}): Promise<Placement> {
  const placement = await from.coordinator.place(request);
  const owner = placement.kind === 'local' ? from : agents.find((a) => a.id === placement.instanceId)!;
  await owner.coordinator.open({ reservationId: placement.reservationId, ...request }, id);
  return placement;
}

const where = (p: Placement) => (p.kind === 'local' ? 'local' : p.instanceId);

describe('placement', () => {
  it('fills this instance first, then the instance with the most free slots, then answers 429 at max', async () => {
    const { agents } = await fleetOf(['agent-a', 'agent-b', 'agent-c']);
    const [a] = agents as [TestAgent, TestAgent, TestAgent];
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push(where(await create(agents, a, `s${i}`)));
    // a is filled first; then b and c tie (2 free each) and the smallest id wins; then c has more free.
    expect(seen).toEqual(['local', 'local', 'agent-b', 'agent-c', 'agent-b', 'agent-c']);
    for (const agent of agents) expect(agent.context.sessions.size).toBe(2);

    const error = await a.coordinator.place().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentError);
    expect((error as AgentError).toHttpBody(404)).toEqual({
      error: {
        code: 'SESSION_LIMIT_REACHED',
        message: 'every instance is full and the fleet is at maxInstances (3 of 3 running): back off and retry',
        status: 429,
        retryAfterSeconds: 5,
        fleetAtMax: true,
      },
    });
    expect((error as AgentError).toJsonRpcError(404).code).toBe(-31010);

    // A session that ends frees its slot for the next placement, wherever it comes from.
    agents[1]!.context.sessions.end('s2', 'deleted');
    await waitFor('the slot to be released', async () => (await a.coordinator.place().catch(() => undefined)) ?? false);
  });

  it('counts a reserved slot as taken until it is opened, cancelled or expires', async () => {
    const { agents } = await fleetOf(
      ['agent-a', 'agent-b'],
      { sessionsPerInstance: 1, maxInstances: 2 },
      { reservationTtlMs: 300 },
    );
    const [a, b] = agents as [TestAgent, TestAgent];
    const first = await a.coordinator.place();
    expect(first.kind).toBe('local');
    const second = await a.coordinator.place();
    expect(second).toMatchObject({ kind: 'remote', instanceId: 'agent-b', advertise: 'http://127.0.0.1:41001/' });
    await expect(b.coordinator.place()).rejects.toMatchObject({ code: 'SESSION_LIMIT_REACHED' });
    await b.coordinator.cancel(second);
    expect(await b.coordinator.place()).toMatchObject({ kind: 'local' });
    // Nobody opens `first` or the last one: they expire and are reclaimed by the next placement.
    await sleep(350);
    expect(where(await a.coordinator.place())).toBe('local');
  });

  it('waits a bounded time for capacity while the fleet may grow, and reports the demand', async () => {
    const { agents, fleet } = await fleetOf(['agent-a'], {
      sessionsPerInstance: 1,
      maxInstances: 2,
      placementWaitSeconds: 3,
    });
    const [a] = agents as [TestAgent];
    await create(agents, a, 'first');
    const waiting = a.coordinator.place();
    // The waiter is recorded as demand (what the autoscaler reads, fleet-wide) ...
    const keys = fleetKeys({ fleet });
    await waitFor('the demand to be recorded', async () => (await plain.zcard(keys.demand)) === 1);
    await a.coordinator.refresh();
    expect((await a.context.metrics.placementDemand.get()).values[0]?.value).toBe(1);
    // ... and a new instance coming up takes it.
    const grown = await startAgents(['agent-b'], { url, fleet, policy: { sessionsPerInstance: 1, maxInstances: 2 } });
    running.push(grown);
    const placement = await waiting;
    expect(placement).toMatchObject({ kind: 'remote', instanceId: 'agent-b' });
    expect(await plain.zcard(keys.demand)).toBe(0);
  });

  it('gives up after placementWaitSeconds with a 429 that says the fleet is scaling out', async () => {
    const { agents, fleet } = await fleetOf(['agent-a'], {
      sessionsPerInstance: 1,
      maxInstances: 2,
      placementWaitSeconds: 0.4,
    });
    const [a] = agents as [TestAgent];
    await create(agents, a, 'only');
    const started = Date.now();
    const error = (await a.coordinator.place().catch((e: unknown) => e)) as AgentError;
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    expect(error.toHttpBody(404).error).toMatchObject({
      code: 'SESSION_LIMIT_REACHED',
      message:
        'no instance had a free session slot within placementWaitSeconds (0.4); the fleet is scaling out: back off and retry',
      fleetAtMax: false,
      retryAfterSeconds: 5,
    });
    expect(await plain.zcard(fleetKeys({ fleet }).demand)).toBe(0);
  });

  it('enforces per-principal and per-tenant quotas fleet-wide, naming the quota', async () => {
    const { agents } = await fleetOf(['agent-a', 'agent-b', 'agent-c'], {
      sessionsPerInstance: 5,
      sessionsPerPrincipal: 2,
      sessionsPerTenant: 3,
    });
    const [a, b, c] = agents as [TestAgent, TestAgent, TestAgent];
    await create(agents, a, 'alice-1', { principal: 'alice', tenant: 'acme' });
    await create(agents, b, 'alice-2', { principal: 'alice', tenant: 'acme' });
    const principal = (await c.coordinator
      .place({ principal: 'alice', tenant: 'acme' })
      .catch((e: unknown) => e)) as AgentError;
    expect(principal.toHttpBody(404)).toEqual({
      error: {
        code: 'PRINCIPAL_QUOTA_REACHED',
        message:
          'principal "alice" holds 2 sessions, the sessionsPerPrincipal quota (2): end one of your sessions first',
        status: 429,
        quota: 'sessionsPerPrincipal',
        limit: 2,
        principal: 'alice',
        tenant: 'acme',
      },
    });
    await create(agents, c, 'bob-1', { principal: 'bob', tenant: 'acme' });
    const tenant = (await a.coordinator
      .place({ principal: 'carol', tenant: 'acme' })
      .catch((e: unknown) => e)) as AgentError;
    expect(tenant.toHttpBody(404).error).toMatchObject({
      code: 'TENANT_QUOTA_REACHED',
      message:
        'tenant "acme" holds 3 sessions, the sessionsPerTenant quota (3): end one of your tenant\'s sessions first',
      status: 429,
      quota: 'sessionsPerTenant',
    });
    expect(tenant.toJsonRpcError(404).code).toBe(-31020);
    // Other principals and tenants are unaffected; ending a session gives its place back.
    expect(where(await a.coordinator.place({ principal: 'dave', tenant: 'other' }))).toBe('local');
    b.context.sessions.end('alice-2', 'deleted');
    await waitFor('alice to get her place back', async () =>
      c.coordinator.place({ principal: 'alice', tenant: 'acme' }).then(
        () => true,
        () => false,
      ),
    );
  });

  it('gives a principal of one name in two tenants two sessionsPerPrincipal quotas; one pair shares one', async () => {
    const { agents, fleet } = await fleetOf(['agent-a', 'agent-b'], {
      sessionsPerInstance: 5,
      sessionsPerPrincipal: 2,
    });
    const [a, b] = agents as [TestAgent, TestAgent];
    const acme = { principal: 'alice', tenant: 'acme' };
    const globex = { principal: 'alice', tenant: 'globex' };
    await create(agents, a, 'acme-1', acme);
    await create(agents, b, 'acme-2', acme);
    // alice@acme holds her quota fleet-wide: alice@globex (and alice of no tenant) have all of theirs.
    await create(agents, a, 'globex-1', globex);
    await create(agents, b, 'globex-2', globex);
    await create(agents, a, 'none-1', { principal: 'alice' });
    // The same pair shares one quota, from whichever agent it asks.
    for (const [who, from] of [
      [acme, a],
      [globex, b],
    ] as const) {
      const refused = (await from.coordinator.place(who).catch((e: unknown) => e)) as AgentError;
      expect(refused.toHttpBody(404).error).toMatchObject({
        code: 'PRINCIPAL_QUOTA_REACHED',
        principal: 'alice',
        tenant: who.tenant,
      });
    }
    // The inventory finds a name in every tenant, or in one.
    const byName = await a.coordinator.listSessions({ principal: 'alice' });
    expect(byName.sessions.map((s) => s.id).sort()).toEqual(['acme-1', 'acme-2', 'globex-1', 'globex-2', 'none-1']);
    const inAcme = await a.coordinator.listSessions({ principal: 'alice', tenant: 'acme' });
    expect(inAcme.sessions.map((s) => s.id)).toEqual(['acme-1', 'acme-2']);
    // Ending one of alice@acme's sessions frees a place of hers, and only of hers.
    b.context.sessions.end('acme-2', 'deleted');
    await waitFor('alice@acme to get her place back', async () =>
      a.coordinator.place(acme).then(
        () => true,
        () => false,
      ),
    );
    await expect(a.coordinator.place(globex)).rejects.toMatchObject({ code: 'PRINCIPAL_QUOTA_REACHED' });
    expect(await plain.zrange(fleetKeys({ fleet }).byPrincipal, 0, -1)).not.toContain('alice\nacme-2');
  });

  it('frees the quota places an agent of an earlier version left in the principal index', async () => {
    const { agents, fleet } = await fleetOf(['agent-a'], { sessionsPerInstance: 5, sessionsPerPrincipal: 2 });
    const [a] = agents as [TestAgent];
    const keys = fleetKeys({ fleet });
    const acme = { principal: 'alice', tenant: 'acme' };
    await create(agents, a, 'kept', acme);
    // What an earlier version leaves: an entry under the pair whose session it ended (it removed
    // only '<principal>\n<id>'), and the entry it wrote for a session of alice@acme under her name alone.
    await plain.zadd(keys.byPrincipal, 0, 'alice\tacme\nended-by-old-agent');
    await create(agents, a, 'old-style', acme);
    await plain.zrem(keys.byPrincipal, 'alice\tacme\nold-style');
    await plain.zadd(keys.byPrincipal, 0, 'alice\nold-style');
    await create(agents, a, 'none-1', { principal: 'alice' });
    // alice of no tenant holds 'none-1' and, by the old entry, 'old-style' of alice@acme: at her
    // limit the entry moves to its pair, and she gets her second place.
    expect(await a.coordinator.place({ principal: 'alice' })).toMatchObject({ kind: 'local' });
    // alice@acme holds 2 sessions ('kept', 'old-style'), plus one stale entry: she is at her quota,
    // counted without the stale entry, which is dropped on the way.
    const refused = (await a.coordinator.place(acme).catch((e: unknown) => e)) as AgentError;
    expect(refused.toHttpBody(404).error).toMatchObject({ code: 'PRINCIPAL_QUOTA_REACHED', tenant: 'acme' });
    expect(refused.message).toContain('holds 2 sessions');
    const members = await plain.zrange(keys.byPrincipal, 0, -1);
    expect(members).not.toContain('alice\tacme\nended-by-old-agent');
    expect(members).not.toContain('alice\nold-style');
    expect(members).toContain('alice\tacme\nold-style');
    // Ending the session removes its entry, whatever name it was written under.
    a.context.sessions.end('old-style', 'deleted');
    await waitFor('the entry to go', async () =>
      (await plain.zrange(keys.byPrincipal, 0, -1)).every((m) => !m.endsWith('\nold-style')),
    );
  });

  it('never lets concurrent placements overshoot a quota', async () => {
    const { agents } = await fleetOf(['agent-a', 'agent-b', 'agent-c'], {
      sessionsPerInstance: 20,
      sessionsPerPrincipal: 5,
    });
    const attempts = Array.from({ length: 30 }, (_, i) =>
      agents[i % 3]!.coordinator.place({ principal: 'eve' }).then(
        () => 'placed',
        (e: AgentError) => e.code,
      ),
    );
    const outcomes = await Promise.all(attempts);
    expect(outcomes.filter((o) => o === 'placed')).toHaveLength(5);
    expect(outcomes.filter((o) => o === 'PRINCIPAL_QUOTA_REACHED')).toHaveLength(25);
  });

  it('sends new sessions away from an instance whose concurrency is exhausted (SPEC §4)', async () => {
    const { agents } = await fleetOf(['agent-a', 'agent-b'], {
      sessionsPerInstance: 2,
      concurrencyPerInstance: 2,
      maxInstances: 2,
    });
    const [a, b] = agents as [TestAgent, TestAgent];
    expect(b.context.load.tryAcquire() && b.context.load.tryAcquire()).toBe(true);
    // b knows at once; the others learn it from b's next heartbeat.
    const away = await b.coordinator.place();
    expect(away).toMatchObject({ kind: 'remote', instanceId: 'agent-a' });
    await b.coordinator.cancel(away);
    await b.coordinator.refresh();
    await a.coordinator.open(await a.coordinator.place(), 'x');
    await a.coordinator.open(await a.coordinator.place(), 'y');
    await expect(a.coordinator.place()).rejects.toMatchObject({ code: 'SESSION_LIMIT_REACHED' });
    b.context.load.release();
    await b.coordinator.refresh();
    expect(await a.coordinator.place()).toMatchObject({ kind: 'remote', instanceId: 'agent-b' });
  });

  it('never overwrites a registered id, and the refusal names who holds it', async () => {
    const { agents } = await fleetOf(['agent-a', 'agent-b'], { sessionsPerInstance: 4 });
    const [a, b] = agents as [TestAgent, TestAgent];
    const alice = { principal: 'alice', tenant: 'acme' };
    await a.coordinator.open(await a.coordinator.place(alice), 'taken', alice);
    // Another instance (the registry refuses), then this one again (its own table refuses).
    for (const [agent, request] of [
      [b, { principal: 'bob' }],
      [a, { principal: 'bob', tenant: 'globex' }],
    ] as const) {
      const error = await agent.coordinator
        .open(await agent.coordinator.place(request), 'taken', request)
        .catch((e) => e);
      expect(error).toBeInstanceOf(OwnershipConflictError);
      expect(error).toMatchObject({ sessionId: 'taken', owner: 'agent-a', holder: alice });
    }
    expect(b.context.sessions.get('taken')).toBeUndefined();
    expect(a.context.sessions.get('taken')?.principal).toBe('alice');
    // Nothing but alice's session is left indexed (the refused placements gave their places back).
    expect((await a.coordinator.listSessions()).sessions).toMatchObject([{ id: 'taken', owner: 'agent-a', ...alice }]);
  });

  it('never places a new session on a draining instance', async () => {
    const { agents } = await fleetOf(['agent-a', 'agent-b', 'agent-c'], { sessionsPerInstance: 4 });
    const [a, b] = agents as [TestAgent, TestAgent, TestAgent];
    await b.coordinator.startDraining();
    await a.coordinator.refresh();
    const targets = new Set<string>();
    for (let i = 0; i < 6; i++) targets.add(where(await create(agents, a, `d${i}`)));
    expect(targets).toEqual(new Set(['local', 'agent-c']));
    expect((await a.coordinator.listInstances()).find((i) => i.id === 'agent-b')).toMatchObject({
      draining: true,
      capacity: 0,
      alive: true,
    });
    await expect(b.coordinator.place()).resolves.toMatchObject({ kind: 'remote', instanceId: 'agent-c' });
  });
});
