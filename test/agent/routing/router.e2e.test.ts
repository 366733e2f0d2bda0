/**
 * The routing core's decisions, each one with the coordinator of a single instance
 * (`LocalCoordinator`) and with the fleet's (`FleetCoordinator` on the run's real Redis): the
 * same `Router` code path for both, as the fronts use it.
 */
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { fleetKeys } from '../../../agent/fleet/keys.js';
import { LocalCoordinator } from '../../../agent/fleet/local-coordinator.js';
import type { Coordinator } from '../../../agent/fleet/types.js';
import {
  type Decision,
  markFromHeader,
  markToHeader,
  NEW_SESSION,
  Router,
  type SessionRef,
} from '../../../agent/routing/index.js';
import type { PolicyInput } from '../../../policy/index.js';
import { inspector, startAgents, type TestAgent, type TestContext, testContext } from '../fleet/helpers.js';

const url = inject('redisUrl');
const alice = { principal: 'alice', tenant: undefined };
const bob = { principal: 'bob', tenant: undefined };
const stay = { signal: new AbortController().signal };
const header = (id: string): SessionRef => ({ id, whenMissing: 'create' });
const mcp = (id: string): SessionRef => ({ id, whenMissing: 'reject' });

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

function routerOf(context: TestContext, coordinator: Coordinator, draining = () => false): Router {
  return new Router({
    coordinator,
    sessions: context.sessions,
    instanceId: context.config.instanceId,
    policy: context.policy,
    purpose: 'http-forward',
    draining,
  });
}

function single(policy: Partial<PolicyInput> = {}, draining = () => false) {
  const context = testContext({ instanceId: 'solo', policy });
  const coordinator = new LocalCoordinator(context);
  cleanup.push(() => context.close());
  return { context, coordinator, router: routerOf(context, coordinator, draining) };
}

async function created(router: Router, id: string, caller = alice): Promise<void> {
  const decision = await router.decide(header(id), caller, undefined, stay);
  if (decision.kind !== 'create') throw new Error(`expected create, got ${decision.kind}`);
  await router.open(decision.ticket, id, { principal: caller.principal });
}

describe('the routing core on a single instance (LocalCoordinator)', () => {
  it('serves a session held here synchronously, without asking the coordinator', async () => {
    const { router } = single();
    await created(router, 's-1');
    const decision = router.decide(header('s-1'), alice, undefined, stay);
    expect(decision).not.toBeInstanceOf(Promise);
    expect(decision).toEqual({ kind: 'serve', adopted: false });
  });

  it('creates a first-seen client-chosen id and a new session here, with a placement ticket', async () => {
    const { router, coordinator } = single();
    const first = await router.decide(header('s-2'), alice, undefined, stay);
    expect(first).toMatchObject({ kind: 'create', ticket: { kind: 'local', principal: 'alice' } });
    const fresh = await router.decide(NEW_SESSION, alice, undefined, stay);
    expect(fresh.kind).toBe('create');
    expect(coordinator.pendingPlacements).toBe(2);
    if (first.kind === 'create') router.cancel(first.ticket);
    if (fresh.kind === 'create') await router.open(fresh.ticket, 'minted', { principal: 'alice' });
    expect(coordinator.pendingPlacements).toBe(0);
  });

  it("answers an unknown or ended id with the policy's expired status and the ended reason", async () => {
    const { router, context } = single({ expiredSessionStatus: 410 });
    expect(await router.decide(mcp('nobody'), alice, undefined, stay)).toMatchObject({
      kind: 'expired',
      reason: 'unknown',
      fleet: false,
      notOwner: false,
      status: 410,
      error: { code: 'SESSION_NOT_FOUND' },
    });
    await created(router, 's-3');
    context.sessions.end('s-3', 'deleted');
    // A client-chosen id that ended is not started again.
    for (const ref of [mcp('s-3'), header('s-3')]) {
      expect(await router.decide(ref, alice, undefined, stay)).toMatchObject({
        kind: 'expired',
        reason: 'deleted',
        status: 410,
        error: { code: 'SESSION_EXPIRED' },
      });
    }
  });

  it('lets the upstream answer (serve) or re-places a saved session (resume), as the Copilot front asks', async () => {
    const { router } = single();
    expect(await router.decide({ id: 'saved', whenMissing: 'serve' }, alice, undefined, stay)).toEqual({
      kind: 'serve',
      adopted: false,
    });
    expect(await router.decide({ id: 'saved', whenMissing: 'resume' }, alice, undefined, stay)).toMatchObject({
      kind: 'create',
    });
  });

  it('refuses with the catalogue error: the principal quota, a draining instance', async () => {
    const { router } = single({ sessionsPerPrincipal: 1 });
    await created(router, 's-4');
    const refused = await router.decide(header('s-5'), alice, undefined, stay);
    expect(refused).toMatchObject({ kind: 'refuse', error: { code: 'PRINCIPAL_QUOTA_REACHED' } });
    expect((await router.decide(header('s-5'), bob, undefined, stay)).kind).toBe('create');

    let draining = false;
    const second = single({}, () => draining);
    draining = true;
    expect(await second.router.decide(NEW_SESSION, alice, undefined, stay)).toMatchObject({
      kind: 'refuse',
      error: { code: 'DRAINING', retryAfterSeconds: 1 },
    });
  });

  it('gives the placement back when the requester left meanwhile', async () => {
    const { router, coordinator } = single();
    const gone = new AbortController();
    const pending = router.decide(NEW_SESSION, alice, undefined, gone);
    gone.abort();
    expect(await pending).toEqual({ kind: 'left' });
    expect(coordinator.pendingPlacements).toBe(0);
  });

  it("honours a hop's reservation and answers a hop for a session not held here as not the owner", async () => {
    const { router } = single();
    const hop = { from: 'other', reservation: 'res-9' };
    expect(await router.decide(header('h-1'), alice, hop, stay)).toEqual({
      kind: 'create',
      ticket: { reservationId: 'res-9', principal: 'alice', tenant: undefined },
    });
    expect(await router.decide(mcp('h-2'), alice, { from: 'other', reservation: undefined }, stay)).toMatchObject({
      kind: 'expired',
      reason: 'unknown',
      notOwner: true,
    });
    // Without a fleet key no mark is accepted.
    expect(router.acceptMark(undefined)).toEqual({ ok: false, reason: 'this agent has no fleet key yet' });
  });

  it('runs the collaborative lock sequence: held with a token, SESSION_BUSY, left, ended', async () => {
    const { router, context } = single({ collaborative: { enabled: true } });
    await created(router, 'c-1');
    const first = await router.lockForWrite('c-1', stay);
    if (first.kind !== 'held') throw new Error(first.kind);
    expect(first.lease.token).toBeGreaterThan(0);
    expect(await router.lockForWrite('c-1', stay, 0)).toMatchObject({
      kind: 'refused',
      error: {
        code: 'SESSION_BUSY',
        message: 'session "c-1" is busy (another write holds its lock)',
      },
    });
    const leaving = new AbortController();
    const waiting = router.lockForWrite('c-1', leaving, 5_000);
    leaving.abort();
    expect(await waiting).toEqual({ kind: 'left' });
    await first.lease.release();
    const second = await router.lockForWrite('c-1', stay, 0);
    if (second.kind !== 'held') throw new Error(second.kind);
    expect(second.lease.token).toBeGreaterThan(first.lease.token);
    const third = router.lockForWrite('c-1', stay, 5_000);
    context.sessions.end('c-1', 'deleted');
    await second.lease.release();
    expect(await third).toEqual({ kind: 'ended' });
  });
});

describe('the routing core in a fleet (FleetCoordinator, real Redis)', () => {
  let plain: Redis;
  beforeAll(async () => {
    plain = await inspector(url);
  });
  afterAll(async () => {
    await plain.quit();
  });

  async function fleet(policy: Partial<PolicyInput> = {}) {
    const started = await startAgents(['a', 'b'], {
      url,
      policy: { sessionsPerInstance: 2, maxInstances: 4, ...policy },
      // Long leases: a test declares an owner dead itself, in Redis.
      coordinator: { leaseMs: 60_000 },
    });
    cleanup.push(() => started.stop());
    const [a, b] = started.agents as [TestAgent, TestAgent];
    return { ...started, a, b, ra: routerOf(a.context, a.coordinator), rb: routerOf(b.context, b.coordinator) };
  }

  /** The owner's lease runs out (as when its process is killed); `viewer` reads the fleet again. */
  async function declareDead(name: string, viewer: TestAgent) {
    await plain.zadd(fleetKeys({ fleet: name }).leases, 1, 'b');
    await viewer.coordinator.refresh();
  }

  async function openOn(agent: TestAgent, id: string) {
    const placement = await agent.coordinator.place({ principal: 'alice', sessionId: id });
    if (placement.kind !== 'local') throw new Error('placed elsewhere');
    return agent.coordinator.open(placement, id, { principal: 'alice' });
  }

  it('forwards to the owner with a mark the owner accepts, retries once on not-owner, then forgets', async () => {
    const { a, b, ra, rb } = await fleet();
    await openOn(b, 'f-1');
    const decision = await ra.decide(mcp('f-1'), alice, undefined, stay);
    if (decision.kind !== 'forward') throw new Error(decision.kind);
    expect(decision.to).toEqual({ instanceId: 'b', advertise: b.context.config.advertise.href });
    expect(decision.reservationId).toBeUndefined();
    const accepted = rb.acceptMark(markFromHeader(markToHeader(decision.mark)));
    expect(accepted).toEqual({ ok: true, mark: { from: 'a', reservation: undefined } });
    // The mark is for b alone.
    expect(ra.acceptMark(decision.mark)).toEqual({
      ok: false,
      reason: 'forwarding mark addressed to another instance',
    });
    // The owner says it is not the owner: decided once more, and that decision has no retry.
    const again = await decision.retry!();
    expect(again.kind).toBe('forward');
    expect((again as Extract<Decision, { kind: 'forward' }>).retry).toBeUndefined();
    expect(a.context.sessions.get('f-1')).toBeUndefined();
  });

  it("places a new session on another instance when this one is full, and the owner honours the hop's reservation", async () => {
    const { b, ra, rb } = await fleet({ sessionsPerInstance: 1 });
    await created(ra, 'p-1');
    const decision = await ra.decide(header('p-2'), alice, undefined, stay);
    if (decision.kind !== 'forward') throw new Error(decision.kind);
    expect(decision.to.instanceId).toBe('b');
    expect(decision.reservationId).toEqual(expect.any(String));
    expect(decision.retry).toBeUndefined();
    const hop = rb.acceptMark(decision.mark);
    if (!hop.ok) throw new Error(hop.reason);
    expect(hop.mark.reservation).toBe(decision.reservationId);
    const there = await rb.decide(header('p-2'), alice, hop.mark, stay);
    if (there.kind !== 'create') throw new Error(there.kind);
    await rb.open(there.ticket, 'p-2', { principal: 'alice' });
    expect(b.context.sessions.get('p-2')?.principal).toBe('alice');
    // Now a serve on b, a forward from a.
    expect(rb.decide(mcp('p-2'), alice, undefined, stay)).toEqual({ kind: 'serve', adopted: false });
    expect((await ra.decide(mcp('p-2'), alice, undefined, stay)).kind).toBe('forward');
  });

  it('answers a session that ended on another agent as that agent would, fleet-wide', async () => {
    const { b, ra } = await fleet();
    await openOn(b, 'e-1');
    b.context.sessions.end('e-1', 'expired-idle');
    await b.coordinator.refresh();
    expect(await ra.decide(header('e-1'), alice, undefined, stay)).toMatchObject({
      kind: 'expired',
      reason: 'expired-idle',
      fleet: true,
      notOwner: false,
      error: { code: 'SESSION_EXPIRED' },
    });
  });

  it("answers a hop for another instance's session as not the owner", async () => {
    const { a, rb } = await fleet();
    await openOn(a, 'n-1');
    expect(await rb.decide(mcp('n-1'), alice, { from: 'a', reservation: undefined }, stay)).toMatchObject({
      kind: 'expired',
      notOwner: true,
    });
  });

  it('adopts a session whose owner died when its state is shared, after loading it upstream', async () => {
    const { a, b, fleet: name, ra } = await fleet({ sharedSessionState: true });
    await openOn(b, 'o-1');
    await declareDead(name, a);
    const loaded: string[] = [];
    const decision = await ra.decide(mcp('o-1'), alice, undefined, {
      signal: stay.signal,
      adoptUpstream: async (id) => {
        loaded.push(id);
      },
    });
    expect(decision).toEqual({ kind: 'serve', adopted: true });
    expect(loaded).toEqual(['o-1']);
    expect(a.context.sessions.get('o-1')).toBeDefined();
  });

  it('abandons it when loading upstream fails, and gives it up without shared state', async () => {
    const shared = await fleet({ sharedSessionState: true });
    await openOn(shared.b, 'o-2');
    await declareDead(shared.fleet, shared.a);
    const refusal = await shared.ra.decide(mcp('o-2'), alice, undefined, {
      signal: stay.signal,
      adoptUpstream: async () => {
        throw new (await import('../../../agent/core/errors.js')).AgentError('UPSTREAM_UNAVAILABLE', 'no resume');
      },
    });
    expect(refusal).toMatchObject({ kind: 'refuse', error: { code: 'UPSTREAM_UNAVAILABLE' } });
    expect(shared.a.context.sessions.get('o-2')).toBeUndefined();

    const own = await fleet({ sharedSessionState: false });
    await openOn(own.b, 'o-3');
    await declareDead(own.fleet, own.a);
    const decision = await own.ra.decide(mcp('o-3'), alice, undefined, stay);
    // Without shared state a dead owner's session is lost with it (or, where the coordinator
    // already knows that, unknown): either way the client starts a new one.
    expect(decision).toMatchObject({ kind: 'expired', error: { code: 'SESSION_NOT_FOUND' } });
  });

  it('serializes writes across agents with one lock and increasing fencing tokens', async () => {
    const { a, b, ra } = await fleet({ collaborative: { enabled: true } });
    await openOn(a, 'l-1');
    const held = await ra.lockForWrite('l-1', stay);
    if (held.kind !== 'held') throw new Error(held.kind);
    // The lock is the fleet's: another agent cannot take it either, and the holder's own next
    // writer is told the session is busy.
    await expect(b.coordinator.lock.acquire('l-1', { waitMs: 0 })).rejects.toMatchObject({ code: 'SESSION_BUSY' });
    expect(await ra.lockForWrite('l-1', stay, 0)).toMatchObject({ kind: 'refused', error: { code: 'SESSION_BUSY' } });
    const waiting = ra.lockForWrite('l-1', stay, 5_000);
    await held.lease.release();
    const next = await waiting;
    if (next.kind !== 'held') throw new Error(next.kind);
    expect(next.lease.token).toBeGreaterThan(held.lease.token);
    await next.lease.release();
  });
});
