/**
 * `--fleet-lease-ms` end to end: three agent processes with `--redis` and a short lease (1.5 s),
 * header affinity with `sharedSessionState`, each agent in front of its own recording HTTP
 * service (the front's upstream fixture, in this process), so a test sees which instance served a
 * request. The configured lease is the one the fleet runs with (the registry's lease deadlines),
 * and when the owner of a session is killed with SIGKILL the session is re-homed and served by
 * another agent once that short lease has lapsed — not after the default 10 s.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentProcess, stopAll } from '../../helpers/http-agent-process.js';
import { startUpstream, type Upstream } from '../http/fixtures/upstream.js';
import { fleetAdmin, spawnMembers, waitFor } from './helpers.js';

const ADMIN_TOKEN = 'admin-token-http-lease-0c93b1';
const IDS = ['a', 'b', 'c'] as const;
type Id = (typeof IDS)[number];
const LEASE_MS = 1500;
const POLICY = {
  affinity: { type: 'header', headerName: 'x-session' },
  sessionsPerInstance: 5,
  maxInstances: 3,
  // A session whose owner died goes on elsewhere only with shared state.
  sharedSessionState: true,
};

const services = {} as Record<Id, Upstream>;
let agents: Record<Id, AgentProcess>;

beforeAll(async () => {
  await Promise.all(IDS.map(async (id) => (services[id] = await startUpstream())));
  ({ agents } = await spawnMembers({
    ids: IDS,
    policy: POLICY,
    upstream: (id) => services[id].url,
    redisUrl: inject('redisUrl'),
    adminToken: ADMIN_TOKEN,
    extraArgs: ['--fleet-lease-ms', String(LEASE_MS)],
  }));
}, 60_000);

afterAll(async () => {
  await stopAll();
  await Promise.all(Object.values(services).map((s) => s.close()));
});

const { admin, owners } = fleetAdmin<Id>((agent) => agents[agent].adminUrl, ADMIN_TOKEN);

const eventually = (check: () => Promise<boolean>, timeoutMs: number, what: string) =>
  waitFor(what, check, timeoutMs, 100);

/** A request for session `id` through agent `via`. */
function post(via: Id, id: string): Promise<Response> {
  return fetch(`${agents[via].url}/echo`, {
    method: 'POST',
    headers: { 'x-session': id, 'content-type': 'application/json' },
    body: JSON.stringify({ via }),
  });
}

/** Which services requests with session `id` reached, in order per service. */
function servedBy(id: string): Id[] {
  return IDS.flatMap((service) =>
    services[service].received.filter((r) => r.headers['x-session'] === id).map(() => service),
  );
}

describe('--fleet-lease-ms (3 agents, --redis, lease 1.5 s)', () => {
  it('the fleet runs with the configured lease: no instance’s lease deadline is further away than it', async () => {
    const seen = (await admin('b', '/admin/fleet/instances')).body.instances as Array<{
      id: string;
      leaseExpiresInMs: number;
    }>;
    expect(seen.map((i) => i.id).sort()).toEqual(['a', 'b', 'c']);
    // With the default lease (10 s, renewed every 3.3 s) every deadline would be at least 6.6 s away.
    for (const instance of seen) expect(instance.leaseExpiresInMs).toBeLessThanOrEqual(LEASE_MS);
  });

  it('a SIGKILLed owner’s session is re-homed and served by another agent once the short lease lapsed', async () => {
    const id = `lease-${Date.now()}`;
    // Before the kill: first seen at a, so a owns it, and every agent forwards it to a's service.
    for (const via of ['a', 'b', 'c'] as const) {
      const response = await post(via, id);
      expect(response.status).toBe(200);
      await response.arrayBuffer();
    }
    expect(servedBy(id)).toEqual(['a', 'a', 'a']);
    expect((await owners('b'))[id]).toBe('a');

    await agents.a.stop('SIGKILL');
    const killedAt = performance.now();

    // Until a's lease lapses the fleet still names a, which cannot be reached (502); then the next
    // request is re-homed on the agent that took it. The lease lapses at most LEASE_MS after the
    // kill; the overall bound leaves a loaded machine plenty of slack and is still shorter than a
    // default lease would have needed.
    const failures: Array<{ status: number; code: unknown }> = [];
    let served: Response | undefined;
    await eventually(
      async () => {
        const response = await post('b', id);
        if (response.status === 200) {
          served = response;
          return true;
        }
        const body = (await response.json()) as { error?: { code?: unknown } };
        failures.push({ status: response.status, code: body.error?.code });
        return false;
      },
      8 * LEASE_MS,
      'the session re-homed',
    );
    const rehomedAfterMs = Math.round(performance.now() - killedAt);
    expect(served?.status).toBe(200);
    expect(((await served!.json()) as { headers: Record<string, string> }).headers['x-session']).toBe(id);
    // Every answer before that was the dead owner being unreachable, never another error.
    for (const failure of failures) expect(failure).toEqual({ status: 502, code: 'UPSTREAM_UNAVAILABLE' });

    // b holds it now, in the registry and by what reached the services; c's requests follow.
    expect((await owners('c'))[id]).toBe('b');
    const again = await post('c', id);
    expect(again.status).toBe(200);
    await again.arrayBuffer();
    expect(servedBy(id)).toEqual(['a', 'a', 'a', 'b', 'b']);
    console.info(
      `re-homed ${rehomedAfterMs} ms after the SIGKILL (lease ${LEASE_MS} ms), after ${failures.length} answers of 502`,
    );
  }, 40_000);
});
