/**
 * JWT mode in a fleet (issue 19 §1, ADR 0020): two agent processes with a real redis-server, an
 * issuer on loopback in this process. A request that reaches the agent not holding its session is
 * forwarded with the client's `Authorization`, and the owner verifies the token itself (it trusts
 * the forwarding agent's mark for routing, never for who the caller is); neither service ever
 * sees the token; a bad token is refused by the first agent and reaches no service.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentProcess, stopAll } from '../../helpers/http-agent-process.js';
import { startIssuer, type TestIssuer } from '../../helpers/oauth-issuer.js';
import { startUpstream, type Upstream } from '../http/fixtures/upstream.js';
import { spawnMembers } from './helpers.js';

const ADMIN_TOKEN = 'admin-token-jwt-fleet-7c2d';
const IDS = ['a', 'b'] as const;
type Id = (typeof IDS)[number];
const POLICY = { affinity: { type: 'header', headerName: 'x-session' }, sessionsPerInstance: 5, maxInstances: 2 };
const AUDIENCE = 'https://fleet.example.com/';

const services = {} as Record<Id, Upstream>;
let agents: Record<Id, AgentProcess>;
let issuer: TestIssuer;

beforeAll(async () => {
  issuer = await startIssuer();
  await Promise.all(IDS.map(async (id) => (services[id] = await startUpstream())));
  ({ agents } = await spawnMembers({
    ids: IDS,
    policy: POLICY,
    upstream: (id) => services[id].url,
    redisUrl: inject('redisUrl'),
    adminToken: ADMIN_TOKEN,
    extraArgs: ['--jwt-issuer', issuer.issuer, '--jwt-audience', AUDIENCE],
  }));
}, 60_000);

afterAll(async () => {
  await stopAll();
  await Promise.all(Object.values(services).map((s) => s.close()));
  await issuer?.close();
});

const hits = () => services.a.received.length + services.b.received.length;

function post(via: Id, session: string, token: string): Promise<Response> {
  return fetch(`${agents[via].url}/echo`, {
    method: 'POST',
    headers: { 'x-session': session, authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: '{}',
  });
}

describe('JWT mode across a fleet', () => {
  it('the owner verifies the forwarded token itself; the services never see it', async () => {
    const alice = await issuer.sign({ sub: 'alice', aud: AUDIENCE });
    expect((await post('a', 'jwt-fleet-1', alice)).status).toBe(200);
    const onA = services.a.received.length;
    // Through b: forwarded to a (the owner), which verifies the token again.
    expect((await post('b', 'jwt-fleet-1', alice)).status).toBe(200);
    expect(services.a.received.length).toBe(onA + 1);
    expect(services.b.received.filter((r) => r.headers['x-session'] === 'jwt-fleet-1')).toEqual([]);
    for (const received of [...services.a.received, ...services.b.received]) {
      expect(received.headers.authorization).toBeUndefined();
    }
    // The owner bound the session to the issuer-qualified principal.
    const inventory = (await (
      await fetch(`${agents.b.adminUrl}/admin/fleet/sessions/jwt-fleet-1`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      })
    ).json()) as { owner: string; principal: string };
    expect(inventory).toMatchObject({ owner: 'a', principal: `${issuer.issuer}#alice` });
  });

  it("another principal's token is refused for the session wherever it arrives", async () => {
    const mallory = await issuer.sign({ sub: 'mallory', aud: AUDIENCE });
    const before = hits();
    for (const via of IDS) expect((await post(via, 'jwt-fleet-1', mallory)).status).toBe(403);
    expect(hits()).toBe(before);
  });

  it('a bad token is refused by the first agent: 401, no service reached, no token in any log', async () => {
    const expired = await issuer.sign({ sub: 'alice', aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) - 300 });
    const before = hits();
    const answer = await post('b', 'jwt-fleet-1', expired);
    expect(answer.status).toBe(401);
    expect(answer.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(hits()).toBe(before);
    for (const id of IDS) expect(JSON.stringify(agents[id].logs())).not.toContain(expired);
  });
});
