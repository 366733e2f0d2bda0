/**
 * sessionsPerTenant across a fleet, end to end: the run's real redis-server, two agent processes
 * with `--redis` in front of the upstream fixture (header affinity), principals and tenants named
 * by the trusted headers of an authenticating proxy. A tenant's sessions count wherever they live
 * — created on either agent, or placed on another instance through a forwarded hop — and no
 * other tenant is held to its quota.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type AgentProcess,
  type Spawned,
  spawnAgent,
  spawnListening,
  stopAll,
} from '../../helpers/http-agent-process.js';
import { fleetAdmin, memberArgs, memberPorts, uniqueFleet } from './helpers.js';

const ADMIN_TOKEN = 'admin-token-http-tenants-7d21';
const IDS = ['a', 'b'] as const;
type Id = (typeof IDS)[number];
const POLICY = {
  affinity: { type: 'header', headerName: 'x-session' },
  sessionsPerInstance: 2,
  maxInstances: 2,
  placementWaitSeconds: 0,
  sessionsPerTenant: 2,
};

let upstream: Spawned & { url: string };
const agents = {} as Record<Id, AgentProcess>;

beforeAll(async () => {
  const fleet = uniqueFleet();
  const redisUrl = inject('redisUrl');
  upstream = await spawnListening('test/agent/http/fixtures/upstream.ts');
  const portOf = await memberPorts(IDS);
  await Promise.all(
    IDS.map(async (id) => {
      agents[id] = await spawnAgent({
        policy: POLICY,
        upstream: upstream.url,
        args: [
          memberArgs({ id, port: portOf[id], redisUrl, fleet, adminToken: ADMIN_TOKEN }),
          ['--principal-header', 'x-user'],
          ['--tenant-header', 'x-tenant'],
          ['--tenant', 'globex'],
        ].flat(),
      });
    }),
  );
  const deadline = Date.now() + 10_000;
  while ((await instances('a')).filter((i) => i.alive).length < 2) {
    if (Date.now() > deadline) throw new Error('the two agents did not see each other');
    await new Promise((r) => setTimeout(r, 100));
  }
}, 60_000);

afterAll(async () => {
  await stopAll();
});

const { admin, instances, owners } = fleetAdmin<Id>((agent) => agents[agent].adminUrl, ADMIN_TOKEN);

/** A request through agent `via` for session `id`, as `user` (of `tenant`, if the proxy names one). */
async function call(via: Id, id: string, user: string, tenant?: string) {
  const response = await fetch(`${agents[via].url}/echo`, {
    headers: { 'x-session': id, 'x-user': user, ...(tenant !== undefined ? { 'x-tenant': tenant } : {}) },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const tenantQuota = {
  error: {
    code: 'TENANT_QUOTA_REACHED',
    message: `tenant "acme" holds 2 sessions, the sessionsPerTenant quota (2): end one of your tenant's sessions first`,
    status: 429,
    quota: 'sessionsPerTenant',
    limit: 2,
    tenant: 'acme',
  },
};

describe('sessionsPerTenant in a fleet (Redis)', () => {
  it("counts a tenant's sessions on every instance, placed locally or forwarded, and frees a place when one ends", async () => {
    expect((await call('a', 'acme-alice', 'alice', 'acme')).status).toBe(200);
    expect((await call('a', 'initech-eve', 'eve', 'initech')).status).toBe(200);
    // Instance a is full: bob's new session is placed on b and forwarded there with its reservation.
    expect((await call('a', 'acme-bob', 'bob', 'acme')).status).toBe(200);
    expect(await owners('b')).toEqual({ 'acme-alice': 'a', 'initech-eve': 'a', 'acme-bob': 'b' });

    // acme holds its 2 places, one on each instance: any agent refuses a third, before capacity.
    expect(await call('b', 'acme-dave', 'dave', 'acme')).toEqual({ status: 429, body: tenantQuota });
    expect(await call('a', 'acme-dave', 'dave', 'acme')).toEqual({ status: 429, body: tenantQuota });

    // Another tenant is not held to acme's quota: carol, named by no header, is --tenant's (globex).
    expect((await call('b', 'globex-carol', 'carol')).status).toBe(200);
    const acme = await admin('a', '/admin/fleet/sessions?tenant=acme');
    expect(
      (acme.body.sessions as Array<{ id: string; owner: string; principal: string; tenant: string }>)
        .map((s) => ({ id: s.id, owner: s.owner, principal: s.principal, tenant: s.tenant }))
        .sort((x, y) => x.id.localeCompare(y.id)),
    ).toEqual([
      { id: 'acme-alice', owner: 'a', principal: 'alice', tenant: 'acme' },
      { id: 'acme-bob', owner: 'b', principal: 'bob', tenant: 'acme' },
    ]);
    const globex = await admin('b', '/admin/fleet/sessions?tenant=globex');
    expect((globex.body.sessions as Array<{ id: string }>).map((s) => s.id)).toEqual(['globex-carol']);

    // The kill switch, from the agent that does not own it, ends alice's session: acme has a place again.
    expect((await admin('b', '/admin/fleet/sessions/acme-alice', 'DELETE')).status).toBe(200);
    expect((await call('b', 'acme-dave', 'dave', 'acme')).status).toBe(200);
    expect((await owners('a'))['acme-dave']).toBe('a');
    expect(await call('a', 'acme-frank', 'frank', 'acme')).toEqual({ status: 429, body: tenantQuota });
  });
});
