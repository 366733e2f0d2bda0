/** The same contract without --redis: one instance, no network. */
import { afterEach, describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../../agent/config.js';
import { AgentError } from '../../../agent/core/errors.js';
import { FleetCoordinator } from '../../../agent/fleet/coordinator.js';
import { createCoordinator } from '../../../agent/fleet/create.js';
import { LocalCoordinator } from '../../../agent/fleet/local-coordinator.js';
import { type TestContext, testContext } from './helpers.js';

const contexts: TestContext[] = [];
afterEach(() => {
  for (const c of contexts.splice(0)) c.close();
});

function local(policy = {}) {
  const context = testContext({
    instanceId: 'solo',
    policy: { sessionsPerInstance: 3, sessionsPerPrincipal: 2, sessionsPerTenant: 2, ...policy },
  });
  contexts.push(context);
  return { context, coordinator: new LocalCoordinator(context) };
}

describe('createCoordinator', () => {
  it('picks the Redis coordinator with --redis and the local one without', () => {
    const solo = testContext({ instanceId: 'solo' });
    const fleet = testContext({ instanceId: 'member', redisUrl: 'redis://127.0.0.1:1' });
    contexts.push(solo, fleet);
    expect(createCoordinator(solo)).toBeInstanceOf(LocalCoordinator);
    const coordinator = createCoordinator(fleet);
    expect(coordinator).toBeInstanceOf(FleetCoordinator);
    expect((coordinator as FleetCoordinator).keys.prefix).toBe('sessionfleet:{default}:');
    void coordinator.stop();
  });

  it('takes the fleet name, the hint keys and the session-state directory from the flags', () => {
    const config = parseAgentConfig(
      ['--policy', 'p.json', '--upstream', 'http://127.0.0.1:3000', '--redis', 'redis://127.0.0.1:1'],
      {
        SESSIONFLEET_FLEET: 'blue',
        SESSIONFLEET_FLEET_KEY: '0123456789abcdef,fedcba9876543210',
        SESSIONFLEET_SESSION_STATE_DIR: '/state',
      },
      { hostname: 'pod-1' },
    );
    expect(config).toMatchObject({
      fleet: 'blue',
      fleetKey: '0123456789abcdef,fedcba9876543210',
      sessionStateDir: '/state',
    });
    const context = { ...testContext({ instanceId: 'pod-1' }), config };
    contexts.push(context);
    const coordinator = createCoordinator(context) as FleetCoordinator;
    expect(coordinator.keys.prefix).toBe('sessionfleet:{blue}:');
    const id = coordinator.mintSessionId();
    expect(coordinator.hints?.read(id)?.instanceId).toBe('pod-1');
    void coordinator.stop();
  });

  it('rejects a bad fleet name or a short key, naming the flag and never echoing the key', () => {
    expect(() =>
      parseAgentConfig(
        ['--policy', 'p', '--upstream', 'http://h:1', '--fleet', 'no spaces', '--fleet-key', 'short'],
        {},
      ),
    ).toThrow(
      /--fleet \("no spaces"\) must be 1–64 letters, digits, '.', '_' or '-'[\s\S]*--fleet-key must be one or more comma-separated keys of at least 16 characters each/,
    );
  });
});

describe('LocalCoordinator', () => {
  it('places every session here; a full instance refuses at open() and gives the placement back', async () => {
    const { context, coordinator } = local();
    for (const id of ['a', 'b', 'c']) {
      const placement = await coordinator.place();
      expect(placement).toEqual({
        kind: 'local',
        reservationId: expect.any(String),
        principal: undefined,
        tenant: undefined,
      });
      await coordinator.open(placement, id);
    }
    // The instance answers for its capacity (the fronts check their table right after placing).
    const placement = await coordinator.place();
    const error = (await coordinator.open(placement, 'd').catch((e: unknown) => e)) as AgentError;
    expect(error.toJsonRpcError(404)).toEqual({
      code: -31010,
      message: 'this instance already holds its limit of 3 sessions: back off and retry',
      data: { code: 'SESSION_LIMIT_REACHED', status: 429, limit: 3 },
    });
    expect(coordinator.pendingPlacements).toBe(0);
    expect(await coordinator.route('a')).toMatchObject({ kind: 'local', session: { id: 'a' } });
    context.sessions.end('a', 'deleted');
    expect(await coordinator.route('a')).toEqual({ kind: 'gone', reason: 'deleted' });
    expect(await coordinator.route('zzz')).toEqual({ kind: 'gone', reason: 'unknown' });
  });

  it('enforces the per-principal and per-tenant quotas with the error of the fleet', async () => {
    const { context, coordinator } = local({ sessionsPerInstance: 10 });
    await coordinator.open(await coordinator.place({ principal: 'alice', tenant: 't' }), 'a1');
    await coordinator.open(await coordinator.place({ principal: 'alice', tenant: 't' }), 'a2');
    const refused = (await coordinator
      .place({ principal: 'alice', tenant: 't' })
      .catch((e: unknown) => e)) as AgentError;
    expect(refused.toHttpBody(404).error).toEqual({
      code: 'PRINCIPAL_QUOTA_REACHED',
      message: 'principal "alice" holds 2 sessions, the sessionsPerPrincipal quota (2): end one of your sessions first',
      status: 429,
      quota: 'sessionsPerPrincipal',
      limit: 2,
      principal: 'alice',
      tenant: 't',
    });
    await expect(coordinator.place({ principal: 'bob', tenant: 't' })).rejects.toMatchObject({
      code: 'TENANT_QUOTA_REACHED',
      message: 'tenant "t" holds 2 sessions, the sessionsPerTenant quota (2)',
    });
    expect((await coordinator.listSessions({ tenant: 't' })).sessions.map((s) => s.id)).toEqual(['a1', 'a2']);
    // An ended session frees its place.
    context.sessions.end('a1', 'deleted');
    await coordinator.open(await coordinator.place({ principal: 'alice', tenant: 't' }), 'a3');
    await expect(coordinator.place({ principal: 'alice', tenant: 't' })).rejects.toMatchObject({
      code: 'PRINCIPAL_QUOTA_REACHED',
    });
  });

  it('gives a principal of one name in two tenants two sessionsPerPrincipal quotas; one pair shares one', async () => {
    const { coordinator } = local({ sessionsPerInstance: 10, sessionsPerTenant: 100 });
    const acme = { principal: 'alice', tenant: 'acme' };
    const globex = { principal: 'alice', tenant: 'globex' };
    await coordinator.open(await coordinator.place(acme), 'acme-1');
    await coordinator.open(await coordinator.place(acme), 'acme-2');
    // alice@acme holds her quota: alice@globex (and alice of no tenant) still have all of theirs.
    await coordinator.open(await coordinator.place(globex), 'globex-1');
    await coordinator.open(await coordinator.place(globex), 'globex-2');
    await coordinator.open(await coordinator.place({ principal: 'alice' }), 'none-1');
    // The same pair shares one quota, whoever asks for it.
    for (const who of [acme, globex]) {
      const refused = (await coordinator.place(who).catch((e: unknown) => e)) as AgentError;
      expect(refused.toHttpBody(404).error).toMatchObject({
        code: 'PRINCIPAL_QUOTA_REACHED',
        message:
          'principal "alice" holds 2 sessions, the sessionsPerPrincipal quota (2): end one of your sessions first',
        principal: 'alice',
        tenant: who.tenant,
      });
    }
  });

  it('counts placements not yet opened, so concurrent new sessions cannot overshoot a quota', async () => {
    const { coordinator } = local({ sessionsPerInstance: 10 });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 5 }, () => coordinator.place({ principal: 'alice' })),
    );
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'rejected', 'rejected']);
    const [first, second] = outcomes.map((o) => (o.status === 'fulfilled' ? o.value : undefined));
    expect(coordinator.pendingPlacements).toBe(2);
    // A cancelled placement gives its place back; an opened one passes it to the session.
    await coordinator.cancel(first!);
    await coordinator.open(second!, 's1');
    expect(coordinator.pendingPlacements).toBe(0);
    await coordinator.open(await coordinator.place({ principal: 'alice' }), 's2');
    await expect(coordinator.place({ principal: 'alice' })).rejects.toMatchObject({ code: 'PRINCIPAL_QUOTA_REACHED' });
  });

  it('gives back the places of a placement never opened once its TTL runs out', async () => {
    const context = testContext({ instanceId: 'solo', policy: { sessionsPerInstance: 3, sessionsPerPrincipal: 1 } });
    contexts.push(context);
    const coordinator = new LocalCoordinator(context, { reservationTtlMs: 50 });
    await coordinator.place({ principal: 'alice' });
    await expect(coordinator.place({ principal: 'alice' })).rejects.toMatchObject({ code: 'PRINCIPAL_QUOTA_REACHED' });
    await new Promise((r) => setTimeout(r, 80));
    expect(coordinator.pendingPlacements).toBe(0);
    await expect(coordinator.place({ principal: 'alice' })).resolves.toMatchObject({ kind: 'local' });
  });

  it('refuses new sessions while draining, and terminates through the front', async () => {
    const { context, coordinator } = local();
    await coordinator.open(await coordinator.place(), 's');
    const ended: string[] = [];
    coordinator.onTerminate(async (id) => {
      ended.push(id);
      return context.sessions.end(id, 'terminated');
    });
    expect(await coordinator.terminate('s')).toEqual({ terminated: true, via: 'local', owner: 'solo' });
    expect(ended).toEqual(['s']);
    await coordinator.startDraining();
    await expect(coordinator.place()).rejects.toBeInstanceOf(AgentError);
    await expect(coordinator.place()).rejects.toMatchObject({ code: 'DRAINING', retryAfterSeconds: 1 });
    expect(await coordinator.listInstances()).toMatchObject([{ id: 'solo', draining: true, capacity: 0 }]);
  });

  it('serializes writers with an in-process lock', async () => {
    const { coordinator } = local({ collaborative: { enabled: true, lockWaitSeconds: 0.05 } });
    const lease = await coordinator.lock.acquire('s');
    await expect(coordinator.lock.acquire('s')).rejects.toMatchObject({ code: 'SESSION_BUSY' });
    await lease.release();
    const next = await coordinator.lock.acquire('s');
    expect(next.token).toBeGreaterThan(lease.token);
    await next.release();
  });
});
