/**
 * Tenants on the HTTP front, end to end with real processes (no Redis): the agent names each
 * request's tenant from `--tenant-header`, else `--tenant`; `sessionsPerTenant` holds a tenant's
 * principals together (the real MCP SDK against `demo/mcp-server.ts`); and under tenant isolation
 * an agent serves its `--tenant` alone (header affinity against the upstream fixture, and MCP).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type AgentProcess,
  type Spawned,
  spawnAgent,
  spawnListening,
  stopAll,
} from '../../helpers/http-agent-process.js';

const ADMIN_TOKEN = 'test-admin-token-tenants';
let mcpServer: Spawned & { url: string };
let fixture: Spawned & { url: string };
const clients: Client[] = [];

beforeAll(async () => {
  [mcpServer, fixture] = await Promise.all([
    spawnListening('demo/mcp-server.ts'),
    spawnListening('test/agent/http/fixtures/upstream.ts'),
  ]);
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close().catch(() => {});
});
afterAll(async () => {
  await stopAll();
});

function agent(policy: Record<string, unknown>, upstream: string, args: string[]): Promise<AgentProcess> {
  return spawnAgent({ policy, upstream, args: ['--admin-token', ADMIN_TOKEN, ...args] });
}

async function mcpClient(a: AgentProcess, headers: Record<string, string>) {
  const transport = new StreamableHTTPClientTransport(new URL(`${a.url}/mcp`), { requestInit: { headers } });
  const client = new Client({ name: 'e2e-tenants', version: '1.0.0' });
  clients.push(client);
  await client.connect(transport);
  return { client, transport };
}

/** What the SDK's failed connect carried: the HTTP status and the agent's JSON-RPC body. */
function refusal(error: unknown) {
  const message = (error as Error).message;
  return {
    code: (error as { code?: unknown }).code,
    body: JSON.parse(message.replace(/^.*?Error POSTing to endpoint: /, '')) as unknown,
  };
}

async function fleetSessions(a: AgentProcess, query = '') {
  const response = await fetch(`${a.adminUrl}/admin/fleet/sessions${query}`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  const body = (await response.json()) as { sessions: Array<{ id: string; principal: string; tenant: string | null }> };
  return body.sessions.map((s) => ({ id: s.id, principal: s.principal, tenant: s.tenant }));
}

const tenantQuota = (tenant: string, limit: number) => ({
  jsonrpc: '2.0',
  error: {
    code: -31020,
    message: `tenant "${tenant}" holds ${limit} sessions, the sessionsPerTenant quota (${limit}): end one of your tenant's sessions first`,
    data: { code: 'TENANT_QUOTA_REACHED', status: 429, quota: 'sessionsPerTenant', limit, tenant },
  },
  id: null,
});

describe('sessionsPerTenant on the HTTP front, without Redis', () => {
  it('holds the principals of a tenant to its quota (429 TENANT_QUOTA_REACHED), leaves other tenants alone, and takes a new session after a DELETE', async () => {
    const a = await agent(
      { affinity: { type: 'mcp-streamable-http' }, sessionsPerInstance: 10, sessionsPerTenant: 2 },
      mcpServer.url,
      ['--principal-header', 'x-user', '--tenant-header', 'x-tenant', '--tenant', 'globex'],
    );
    const as = (user: string, tenant?: string) =>
      mcpClient(a, { 'x-user': user, ...(tenant !== undefined ? { 'x-tenant': tenant } : {}) });

    const alice = await as('alice', 'acme');
    const bob = await as('bob', 'acme');
    // A third principal of acme: the tenant's quota, not the principal's.
    expect(await as('carol', 'acme').catch(refusal)).toEqual({ code: 429, body: tenantQuota('acme', 2) });

    // Principals without a tenant header belong to --tenant: globex has its own quota.
    const dave = await as('dave');
    const erin = await as('erin', 'globex');
    expect(await as('frank').catch(refusal)).toEqual({ code: 429, body: tenantQuota('globex', 2) });

    // Sessions carry their tenant.
    expect(await fleetSessions(a, '?tenant=acme')).toEqual(
      expect.arrayContaining([
        { id: alice.transport.sessionId, principal: 'alice', tenant: 'acme' },
        { id: bob.transport.sessionId, principal: 'bob', tenant: 'acme' },
      ]),
    );
    expect((await fleetSessions(a, '?tenant=globex')).map((s) => [s.principal, s.tenant]).sort()).toEqual([
      ['dave', 'globex'],
      ['erin', 'globex'],
    ]);
    expect(dave.transport.sessionId).toBeDefined();
    expect(erin.transport.sessionId).toBeDefined();

    // An ended session frees its tenant's place.
    await alice.transport.terminateSession();
    const carol = await as('carol', 'acme');
    const result = (await carol.client.callTool({ name: 'whoami', arguments: {} })) as {
      content: Array<{ text: string }>;
    };
    expect(result.content[0]?.text).toBe(carol.transport.sessionId);
    expect((await fleetSessions(a, '?tenant=acme')).map((s) => s.principal).sort()).toEqual(['bob', 'carol']);

    const malformed = await fetch(`${a.url}/mcp`, {
      method: 'POST',
      headers: { 'x-user': 'alice', 'x-tenant': 'acme corp', 'content-type': 'application/json' },
      body: '{}',
    });
    expect(malformed.status).toBe(401);
    expect(((await malformed.json()) as { error: unknown }).error).toEqual({
      code: -32001,
      message: 'the x-tenant header must name one tenant (1-256 characters, no spaces): present a valid token',
      data: { code: 'UNAUTHENTICATED', status: 401, header: 'x-tenant' },
    });
  });
});

describe('sessions bound to their tenant on the HTTP front', () => {
  it('refuses a caller of another tenant (or of none) a session it knows the id of, with 403 SESSION_FORBIDDEN, even without principals', async () => {
    const a = await agent(
      { affinity: { type: 'header', headerName: 'x-session' }, sessionsPerInstance: 5 },
      fixture.url,
      ['--tenant-header', 'x-tenant'],
    );
    const call = async (headers: Record<string, string>) => {
      const response = await fetch(`${a.url}/echo`, { headers });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    expect((await call({ 'x-tenant': 'acme', 'x-session': 's-acme' })).status).toBe(200);
    const forbidden = {
      status: 403,
      body: {
        error: {
          code: 'SESSION_FORBIDDEN',
          message: 'this session belongs to another tenant: use a session you created',
          status: 403,
        },
      },
    };
    expect(await call({ 'x-tenant': 'globex', 'x-session': 's-acme' })).toEqual(forbidden);
    expect(await call({ 'x-session': 's-acme' })).toEqual(forbidden);
    // The owner's tenant goes on using it; the refused callers took nothing.
    expect((await call({ 'x-tenant': 'acme', 'x-session': 's-acme' })).status).toBe(200);
    expect(await fleetSessions(a)).toEqual([{ id: 's-acme', principal: null, tenant: 'acme' }]);
  });
});

describe('tenant isolation on the HTTP front', () => {
  it('serves its --tenant and refuses another tenant with 403 TENANT_FORBIDDEN, for new and existing sessions', async () => {
    const a = await agent(
      { isolation: 'tenant', affinity: { type: 'header', headerName: 'x-session' }, sessionsPerInstance: 5 },
      fixture.url,
      ['--tenant', 'acme', '--principal-header', 'x-user', '--tenant-header', 'x-tenant'],
    );
    const listening = a.logs().find((l) => l.msg === 'agent listening');
    expect(listening).toMatchObject({ isolation: 'tenant', tenant: 'acme' });
    const call = async (headers: Record<string, string>) => {
      const response = await fetch(`${a.url}/echo`, { headers });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    // No tenant header: the principal belongs to the instance's tenant.
    expect((await call({ 'x-user': 'alice', 'x-session': 's-alice' })).status).toBe(200);
    expect((await call({ 'x-user': 'alice', 'x-tenant': 'acme', 'x-session': 's-alice' })).status).toBe(200);

    const forbidden = {
      error: {
        code: 'TENANT_FORBIDDEN',
        message:
          'principal "mallory" belongs to tenant "globex", and this instance serves another tenant only (tenant isolation): use your own tenant\'s instances',
        status: 403,
        tenant: 'globex',
      },
    };
    expect(await call({ 'x-user': 'mallory', 'x-tenant': 'globex', 'x-session': 's-mallory' })).toEqual({
      status: 403,
      body: forbidden,
    });
    expect(await call({ 'x-user': 'mallory', 'x-tenant': 'globex', 'x-session': 's-alice' })).toEqual({
      status: 403,
      body: forbidden,
    });
    // Nothing of globex reached the instance or took a session.
    expect(await fleetSessions(a)).toEqual([{ id: 's-alice', principal: 'alice', tenant: 'acme' }]);
    const metrics = await (await fetch(`${a.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/^sessionfleet_rejections_total\{[^}]*code="TENANT_FORBIDDEN"[^}]*\} 2$/m);
  });

  it('refuses another tenant with the JSON-RPC error MCP clients handle', async () => {
    const a = await agent({ isolation: 'tenant', affinity: { type: 'mcp-streamable-http' } }, mcpServer.url, [
      '--tenant',
      'acme',
      '--tenant-header',
      'x-tenant',
    ]);
    const own = await mcpClient(a, {});
    const sessionId = own.transport.sessionId!;
    expect(await mcpClient(a, { 'x-tenant': 'globex' }).catch(refusal)).toEqual({
      code: 403,
      body: {
        jsonrpc: '2.0',
        error: {
          code: -31021,
          message:
            'this request belongs to tenant "globex", and this instance serves another tenant only (tenant isolation): use your own tenant\'s instances',
          data: { code: 'TENANT_FORBIDDEN', status: 403, tenant: 'globex' },
        },
        id: null,
      },
    });
    // Another tenant cannot reach an existing session either, not even to delete it.
    const response = await fetch(`${a.url}/mcp`, {
      method: 'DELETE',
      headers: { 'mcp-session-id': sessionId, 'x-tenant': 'globex' },
    });
    expect(response.status).toBe(403);
    expect(await fleetSessions(a)).toEqual([{ id: sessionId, principal: null, tenant: 'acme' }]);
  });
});
