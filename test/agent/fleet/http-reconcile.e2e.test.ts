/**
 * The reconcile after a restart (issue #14 §4, ADR 0022), end to end: the run's real
 * redis-server, the demo MCP server (real SDK, Streamable HTTP) and agent processes with
 * `--redis`. An agent is killed with SIGKILL — no drain, nothing released — and started again
 * under the same instance id, as a restarted container of a pod keeps its host name.
 *
 * Before the reconcile, the restarted agent's first resync released every session of its earlier
 * life while the MCP server still held them (the report: 91 upstream vs 50 known). Now the
 * sessions the server still holds go on for their clients — same principal, same quota places —
 * and the ones it dropped meanwhile get the expired answer and leave the registry.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentProcess, type Spawned, spawnListening, stopAll } from '../../helpers/http-agent-process.js';
import { fleetAdmin, inspector, lapseLease, spawnMembers, waitFor } from './helpers.js';

const ADMIN_TOKEN = 'admin-token-http-reconcile-5c8e';

let mcp: Spawned & { url: string };
const clients: Client[] = [];

beforeAll(async () => {
  mcp = await spawnListening('demo/mcp-server.ts');
}, 60_000);

afterAll(async () => {
  for (const client of clients.splice(0)) await client.close().catch(() => {});
  await stopAll();
});

async function upstreamSessions(): Promise<number> {
  return ((await (await fetch(`${mcp.url}/debug/sessions`)).json()) as { streamable: number }).streamable;
}

/** An MCP client of `user`, connected through `agent` (its URL stays the same across a restart). */
async function connect(agent: AgentProcess, user: string) {
  const transport = new StreamableHTTPClientTransport(new URL(`${agent.url}/mcp`), {
    requestInit: { headers: { 'x-user': user } },
  });
  const client = new Client({ name: `reconcile-${user}`, version: '1.0.0' });
  clients.push(client);
  await client.connect(transport);
  return { client, id: transport.sessionId! };
}

async function whoami(client: Client): Promise<string> {
  const result = (await client.callTool({ name: 'whoami', arguments: {} })) as { content: Array<{ text: string }> };
  return result.content[0]?.text ?? '';
}

/** A raw `tools/list` for session `id` as `user`: the status and body a client gets. */
async function rawCall(agent: AgentProcess, id: string, user: string) {
  const response = await fetch(`${agent.url}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-session-id': id,
      'mcp-protocol-version': '2025-06-18',
      'x-user': user,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
  });
  return { status: response.status, body: await response.text() };
}

/** The agent's one summary line of the reconcile. */
async function summary(agent: AgentProcess) {
  const line = await agent.waitForLine((l) => l.includes('reconciled the sessions held before a restart'));
  return JSON.parse(line) as { adopted: number; ended: number; failed: number; left: number };
}

async function kill(agent: AgentProcess): Promise<void> {
  agent.child.kill('SIGKILL');
  await agent.exited;
}

describe('reconcile after a SIGKILL and a restart under the same instance id (MCP Streamable HTTP)', () => {
  it('adopts what the MCP server still holds, ends what it dropped, and counts every quota place once', async () => {
    const redisUrl = inject('redisUrl');
    const { agents, respawn } = await spawnMembers({
      ids: ['a'] as const,
      policy: { affinity: { type: 'mcp-streamable-http' }, sessionsPerPrincipal: 3 },
      upstream: () => mcp.url,
      redisUrl,
      adminToken: ADMIN_TOKEN,
      extraArgs: ['--principal-header', 'x-user'],
    });
    const { admin } = fleetAdmin<'a'>(() => agents.a.adminUrl, ADMIN_TOKEN);
    const registered = async () =>
      ((await admin('a', '/admin/fleet/sessions')).body.sessions as Array<{ id: string; principal: string }>)
        .map((s) => s.id)
        .sort();
    const baseline = await upstreamSessions();

    const alice = [
      await connect(agents.a, 'alice'),
      await connect(agents.a, 'alice'),
      await connect(agents.a, 'alice'),
    ];
    const bob = [await connect(agents.a, 'bob'), await connect(agents.a, 'bob'), await connect(agents.a, 'bob')];
    for (const s of [...alice, ...bob]) expect(await whoami(s.client)).toBe(s.id);
    expect(await upstreamSessions()).toBe(baseline + 6);
    // The hostile call and its answer before the restart: bob naming alice's session.
    const bobOnAlice = await rawCall(agents.a, alice[0]!.id, 'bob');
    expect([403, 404]).toContain(bobOnAlice.status);
    // Alice is at her quota.
    await expect(connect(agents.a, 'alice')).rejects.toThrow(/429|PRINCIPAL_QUOTA_REACHED/);

    await kill(agents.a);
    // While the agent is down, the MCP server drops one session of each user (its own timeout, a
    // restart of the server, an operator): DELETE straight at the server.
    for (const gone of [alice[2]!, bob[2]!]) {
      const deleted = await fetch(`${mcp.url}/mcp`, { method: 'DELETE', headers: { 'mcp-session-id': gone.id } });
      expect(deleted.status).toBe(200);
    }
    expect(await upstreamSessions()).toBe(baseline + 4);

    const restarted = await respawn('a');
    expect(await summary(restarted)).toMatchObject({ adopted: 4, ended: 2, failed: 0 });

    // The sessions the server held go on with the same clients: no 404, no new initialize.
    for (const s of [alice[0]!, alice[1]!, bob[0]!, bob[1]!]) expect(await whoami(s.client)).toBe(s.id);
    // The dropped ones get the expired answer (ADR 0004) and are gone from the registry.
    for (const s of [alice[2]!, bob[2]!]) {
      const answer = await rawCall(restarted, s.id, s === alice[2] ? 'alice' : 'bob');
      expect(answer.status).toBe(404);
      expect(JSON.parse(answer.body)).toMatchObject({ jsonrpc: '2.0', error: { code: -32001 } });
    }
    const known = [alice[0]!, alice[1]!, bob[0]!, bob[1]!].map((s) => s.id).sort();
    expect(await registered()).toEqual(known);
    expect(await upstreamSessions()).toBe(baseline + known.length);

    // Hostile: the adopted session is still alice's alone — bob gets what he got before.
    expect(await rawCall(restarted, alice[0]!.id, 'bob')).toEqual(bobOnAlice);
    expect(await whoami(alice[0]!.client)).toBe(alice[0]!.id);

    // Quota places counted once: alice holds 2 of 3, so exactly one more session is hers.
    const third = await connect(restarted, 'alice');
    expect(await whoami(third.client)).toBe(third.id);
    await expect(connect(restarted, 'alice')).rejects.toThrow(/429|PRINCIPAL_QUOTA_REACHED/);
    expect(await upstreamSessions()).toBe(baseline + known.length + 1);

    const metrics = await (await fetch(`${restarted.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/sessionfleet_reconciled_sessions_total\{[^}]*outcome="adopted"[^}]*\} 4/);
    expect(metrics).toMatch(/sessionfleet_reconciled_sessions_total\{[^}]*outcome="ended"[^}]*\} 2/);

    // Ending the adopted sessions frees them upstream as before.
    for (const s of [alice[0]!, alice[1]!, bob[0]!, bob[1]!, third]) await s.client.close();
    for (const s of [alice[0]!, alice[1]!, bob[0]!, bob[1]!, third]) {
      await fetch(`${restarted.url}/mcp`, {
        method: 'DELETE',
        headers: { 'mcp-session-id': s.id, 'x-user': s === bob[0] || s === bob[1] ? 'bob' : 'alice' },
      });
    }
    await waitFor('the server to hold none of them', async () => (await upstreamSessions()) === baseline);
    expect(await registered()).toEqual([]);
  });
});

describe('reconcile when the MCP server does not answer', () => {
  it('keeps the sessions as held once its budget runs out, counted as failed, rather than end what the server may hold', async () => {
    const redisUrl = inject('redisUrl');
    const server = await spawnListening('demo/mcp-server.ts');
    const { agents, respawn } = await spawnMembers({
      ids: ['a'] as const,
      policy: { affinity: { type: 'mcp-streamable-http' } },
      upstream: () => server.url,
      redisUrl,
      adminToken: ADMIN_TOKEN,
      extraArgs: ['--principal-header', 'x-user', '--fleet-reconcile-ms', '1500'],
    });
    const { admin } = fleetAdmin<'a'>(() => agents.a.adminUrl, ADMIN_TOKEN);
    const sessions = [await connect(agents.a, 'dora'), await connect(agents.a, 'dora')];
    await kill(agents.a);
    await server.stop('SIGKILL');

    const restarted = await respawn('a');
    expect(await summary(restarted)).toMatchObject({ adopted: 0, ended: 0, failed: 2 });
    const listed = (await admin('a', '/admin/fleet/sessions')).body.sessions as Array<{ id: string; owner: string }>;
    expect(listed.map((s) => [s.id, s.owner]).sort()).toEqual(sessions.map((s) => [s.id, 'a']).sort());
    const metrics = await (await fetch(`${restarted.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/sessionfleet_reconciled_sessions_total\{[^}]*outcome="failed"[^}]*\} 2/);
    // Held here: the client reaches its session and gets the agent's answer for a dead upstream.
    const answer = await rawCall(restarted, sessions[0]!.id, 'dora');
    expect([502, 503]).toContain(answer.status);
    expect(answer.body).toContain('UPSTREAM_');
  });
});

describe('reconcile of a collaborative session whose write was cut by the SIGKILL', () => {
  it("releases the earlier life's lock on it: the next write goes through, not SESSION_BUSY for a lock TTL", async () => {
    const redisUrl = inject('redisUrl');
    const upstream = await spawnListening('test/agent/http/fixtures/upstream.ts');
    const { agents, respawn } = await spawnMembers({
      ids: ['a'] as const,
      policy: {
        affinity: { type: 'header', headerName: 'x-session' },
        // The lock outlives the whole test unless released; a waiting writer gives up after 1 s.
        collaborative: { enabled: true, lockTtlSeconds: 120, lockWaitSeconds: 1 },
      },
      upstream: () => upstream.url,
      redisUrl,
      adminToken: ADMIN_TOKEN,
      extraArgs: ['--principal-header', 'x-user'],
    });
    const write = (agent: AgentProcess, path: string) =>
      fetch(`${agent.url}${path}`, { method: 'POST', headers: { 'x-session': 'shared-doc', 'x-user': 'erin' } });
    expect((await write(agents.a, '/echo')).status).toBe(200);
    // A write holds the lock (and renews it) when the agent is killed.
    const cut = write(agents.a, '/slow?ms=60000').catch(() => undefined);
    const redis = await inspector(redisUrl);
    try {
      const holder = await waitFor('the write to hold the lock', async () => {
        const keys = await redis.keys('*lock:holder:shared-doc');
        return keys.length === 1 ? keys[0] : undefined;
      });
      await kill(agents.a);
      await cut;
      expect(await redis.pttl(holder)).toBeGreaterThan(60_000);

      const restarted = await respawn('a');
      expect(await summary(restarted)).toMatchObject({ adopted: 1, ended: 0, failed: 0 });
      const next = await write(restarted, '/echo');
      expect(next.status).toBe(200);
      await waitFor('the lock to be free again after that write', async () => (await redis.exists(holder)) === 0);
    } finally {
      redis.disconnect();
    }
    await upstream.stop();
  });
});

describe('reconcile in a fleet (header affinity, shared session state)', () => {
  it('never takes back a session another agent adopted while this one was down, and adopts the rest', async () => {
    const redisUrl = inject('redisUrl');
    const upstream = await spawnListening('test/agent/http/fixtures/upstream.ts');
    const { fleet, agents, respawn } = await spawnMembers({
      ids: ['a', 'b'] as const,
      policy: {
        affinity: { type: 'header', headerName: 'x-session' },
        sharedSessionState: true,
        sessionsPerInstance: 4,
        maxInstances: 2,
      },
      upstream: () => upstream.url,
      redisUrl,
      adminToken: ADMIN_TOKEN,
      extraArgs: ['--principal-header', 'x-user'],
      inOrder: true,
    });
    const { owners } = fleetAdmin<'a' | 'b'>((id) => agents[id].adminUrl, ADMIN_TOKEN);
    const call = (via: 'a' | 'b', id: string, user = 'carol') =>
      fetch(`${agents[via].url}/echo`, { headers: { 'x-session': id, 'x-user': user } }).then((r) => r.status);

    expect(await call('a', 'moved')).toBe(200);
    expect(await call('a', 'stays')).toBe(200);
    expect(await owners('b')).toEqual({ moved: 'a', stays: 'a' });
    const bobBefore = await call('a', 'stays', 'bob');
    expect(bobBefore).toBeGreaterThanOrEqual(400);

    await kill(agents.a);
    // a's lease runs out now; b, asked for "moved", adopts it (its state is shared).
    const redis = await inspector(redisUrl);
    try {
      expect(await lapseLease(redis, fleet, 'a')).toBe(1);
    } finally {
      redis.disconnect();
    }
    expect(await call('b', 'moved')).toBe(200);
    expect((await owners('b')).moved).toBe('b');

    const restarted = await respawn('a');
    expect(await summary(restarted)).toMatchObject({ adopted: 1, ended: 0, failed: 0 });
    // "moved" stays b's; "stays" is a's again (without the reconcile it would have been handed off).
    expect(await owners('b')).toEqual({ moved: 'b', stays: 'a' });
    expect(await call('a', 'moved')).toBe(200);
    expect(await call('a', 'stays')).toBe(200);
    expect(await owners('b')).toEqual({ moved: 'b', stays: 'a' });
    // Hostile: bob cannot use carol's adopted session, through either agent.
    expect(await call('a', 'stays', 'bob')).toBe(bobBefore);
    expect(await call('b', 'stays', 'bob')).toBe(bobBefore);
    await upstream.stop();
  });
});
