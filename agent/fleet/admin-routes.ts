/**
 * The fleet's admin routes: inventory of every session in the fleet (not only this instance's),
 * one session's details, the kill switch, and the instances. `admin.ts` registers this plugin
 * inside its token-protected scope, so the same bearer token guards it.
 *
 *   GET    /admin/fleet/instances
 *   GET    /admin/fleet/sessions?principal=&tenant=&instance=&minAgeSeconds=&maxAgeSeconds=&limit=
 *   GET    /admin/fleet/sessions/:id
 *   DELETE /admin/fleet/sessions/:id     ends it properly on its owner (or in the registry if the owner is gone)
 *   POST   /admin/fleet/instances/:id/drain   the instance takes no new sessions; its sessions go on
 *   GET    /admin/fleet/tasks?principal=&tenant=&limit=   live MCP 2026 tasks and handles, who holds and created each
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { AGENT_PATHS } from '../../policy/agent-interface.js';
import { AgentError } from '../core/errors.js';
import type { FleetAdmin, SessionFilter } from './types.js';

export interface FleetAdminRoutesOptions {
  fleet: FleetAdmin;
}

const TEXT_FILTERS = { principal: 'principal', tenant: 'tenant', instance: 'instanceId' } as const;
const NUMBER_FILTERS = ['minAgeSeconds', 'maxAgeSeconds', 'limit'] as const;

function parseFilter(query: Record<string, unknown>): SessionFilter {
  const filter: SessionFilter = {};
  const problems: string[] = [];
  for (const [name, field] of Object.entries(TEXT_FILTERS)) {
    const value = query[name];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value.length === 0 || value.length > 256) {
      problems.push(`${name} must be a non-empty string of at most 256 characters`);
      continue;
    }
    filter[field] = value;
  }
  for (const name of NUMBER_FILTERS) {
    const value = query[name];
    if (value === undefined) continue;
    const n = Number(value);
    const max = name === 'limit' ? 10_000 : Number.MAX_SAFE_INTEGER;
    if (typeof value !== 'string' || !Number.isInteger(n) || n < (name === 'limit' ? 1 : 0) || n > max) {
      problems.push(
        `${name} (${JSON.stringify(value)}) must be a whole number${name === 'limit' ? ' from 1 to 10000' : ' ≥ 0'}`,
      );
      continue;
    }
    filter[name] = n;
  }
  const unknown = Object.keys(query).filter(
    (k) => !(k in TEXT_FILTERS) && !(NUMBER_FILTERS as readonly string[]).includes(k),
  );
  for (const name of unknown) problems.push(`unknown filter ${JSON.stringify(name)}`);
  if (problems.length > 0) throw new AgentError('BAD_REQUEST', problems.join('; '));
  return filter;
}

export function sendError(reply: FastifyReply, error: AgentError): FastifyReply {
  // The admin API is not a session route: "expired" statuses resolve to a plain 404.
  if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
  return reply.code(error.status(404)).send(error.toHttpBody(404));
}

export async function fleetAdminRoutes(app: FastifyInstance, options: FleetAdminRoutesOptions): Promise<void> {
  const { fleet } = options;

  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof AgentError) return sendError(reply, error);
    throw error;
  });

  app.get(`${AGENT_PATHS.admin}/fleet/instances`, async () => ({
    instanceId: fleet.instanceId,
    instances: await fleet.listInstances(),
  }));

  app.post<{ Params: { id: string } }>(`${AGENT_PATHS.admin}/fleet/instances/:id/drain`, async (request, reply) => {
    const result = await fleet.drains.drain(request.params.id);
    if (!result)
      return sendError(
        reply,
        new AgentError('NOT_FOUND', `no live instance ${JSON.stringify(request.params.id)} in the fleet`),
      );
    return { draining: true, ...result };
  });

  app.get(`${AGENT_PATHS.admin}/fleet/sessions`, async (request) => {
    const filter = parseFilter(request.query as Record<string, unknown>);
    const { sessions, truncated } = await fleet.listSessions(filter);
    return { instanceId: fleet.instanceId, count: sessions.length, truncated, sessions };
  });

  app.get(`${AGENT_PATHS.admin}/fleet/tasks`, async (request) => {
    const query = request.query as Record<string, unknown>;
    const extra = Object.keys(query).filter((k) => k !== 'principal' && k !== 'tenant' && k !== 'limit');
    if (extra.length > 0) throw new AgentError('BAD_REQUEST', `unknown filter ${JSON.stringify(extra[0])}`);
    const { principal, tenant, limit } = parseFilter(query);
    if (!fleet.affinityKeys) throw new AgentError('BAD_REQUEST', 'this agent keeps no task inventory');
    const { keys, truncated } = await fleet.affinityKeys.listFleet({
      ...(principal !== undefined ? { principal } : {}),
      ...(tenant !== undefined ? { tenant } : {}),
      ...(limit !== undefined ? { limit } : {}),
    });
    return {
      instanceId: fleet.instanceId,
      count: keys.length,
      truncated,
      tasks: keys.map((k) => ({
        kind: k.kind,
        id: k.key,
        owner: k.owner,
        principal: k.principal ?? null,
        tenant: k.tenant ?? null,
        expiresAt: new Date(k.expiresAt).toISOString(),
      })),
    };
  });

  app.get<{ Params: { id: string } }>(`${AGENT_PATHS.admin}/fleet/sessions/:id`, async (request, reply) => {
    const session = await fleet.inspect(request.params.id);
    if (!session)
      return sendError(
        reply,
        new AgentError('SESSION_NOT_FOUND', `no session ${JSON.stringify(request.params.id)} in the fleet`),
      );
    return session;
  });

  app.delete<{ Params: { id: string } }>(`${AGENT_PATHS.admin}/fleet/sessions/:id`, async (request, reply) => {
    const result = await fleet.terminate(request.params.id);
    if (!result.terminated && result.via === 'none')
      return sendError(
        reply,
        new AgentError('SESSION_NOT_FOUND', `no session ${JSON.stringify(request.params.id)} in the fleet`),
      );
    return { sessionId: request.params.id, ...result };
  });
}
