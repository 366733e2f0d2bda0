/**
 * The admin port (`--admin-listen`): liveness, readiness, Prometheus metrics and the session admin
 * API. Never served on the client port.
 */
import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { AGENT_PATHS } from '../policy/agent-interface.js';
import type { AgentContext, Front } from './core/context.js';
import type { UpstreamProbe } from './core/probe.js';
import { fleetKillRoutes } from './fleet/admin-kill-routes.js';
import { fleetAdminRoutes } from './fleet/admin-routes.js';
import type { FleetAdmin } from './fleet/types.js';

export interface AdminOptions {
  context: AgentContext;
  probe: UpstreamProbe;
  front: Front;
  /** The fleet's inventory and kill switch (`/admin/fleet/...`), behind the same admin token. */
  fleet?: FleetAdmin;
}

/**
 * Why this instance would not take a new session itself right now; empty when it would. This is
 * `/readyz` (SPEC §8): a signal for an operator, an autoscaler or a load balancer that can steer
 * only new sessions — never for taking the instance out of a Service (see `notServingReasons`).
 */
export function newSessionReasons({ context, probe }: Pick<AdminOptions, 'context' | 'probe'>): string[] {
  const reasons: string[] = [];
  if (!probe.isUp) reasons.push('upstream is not answering');
  // Without the fleet store new sessions get 503 (unless failOpen places them here anyway).
  const fleet = context.coordinator;
  if (fleet?.reconcile?.running) reasons.push('reconciling the sessions held before a restart');
  else if (fleet?.mode === 'redis' && !fleet.available && !context.policy.failOpen)
    reasons.push('fleet store (Redis) is unreachable');
  if (context.draining) reasons.push('draining');
  if (!context.draining && !context.sessions.canAccept()) reasons.push('no free session slot');
  return reasons;
}

/**
 * Why the instance should leave the load balancer's rotation (`/readyz/serving`, the Service's readiness);
 * empty while it should stay. Readiness takes every request of the instance out of the Service —
 * those of the sessions it holds too — so it fails only when staying could not help any client:
 * - draining: clients must move on (its sessions are handed off or end);
 * - without a fleet, the upstream not answering: nothing here can serve, and nothing can be
 *   placed elsewhere.
 * Not for a full instance, a fleet store that does not answer, or (in a fleet) its own upstream
 * down: it still serves or forwards what it holds and places new sessions on peers, and taking
 * it out would only cut its clients off — during a Redis outage, every agent's at once.
 */
export function notServingReasons({ context, probe }: Pick<AdminOptions, 'context' | 'probe'>): string[] {
  const reasons: string[] = [];
  if (context.draining) reasons.push('draining');
  const fleet = context.coordinator?.mode === 'redis';
  if (!fleet && !probe.isUp) reasons.push('upstream is not answering');
  return reasons;
}

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function buildAdminApp(options: AdminOptions): FastifyInstance {
  const { context, probe, front } = options;
  const { metrics, sessions, policy } = context;
  const app = Fastify({ logger: false });

  app.get(AGENT_PATHS.health, async (_request, reply) => {
    const healthy = probe.isHealthy;
    return reply.code(healthy ? 200 : 503).send({
      status: healthy ? 'ok' : 'unhealthy',
      upstreamUp: probe.isUp,
      // null until the upstream has answered once: start-up is not a success.
      lastUpstreamSuccess: probe.lastSuccessAt === undefined ? null : new Date(probe.lastSuccessAt).toISOString(),
    });
  });

  // The agent's own liveness: answered by the agent's event loop, whatever the app does, so a slow
  // or hung app never gets the agent (and every client connection of the instance) restarted.
  app.get(AGENT_PATHS.live, async () => ({ status: 'ok' }));

  // The app's start-up: 200 only while the app answers the agent's probe, with no grace period, so
  // a start-up budget (a startup probe's failure threshold) is spent exactly as configured.
  app.get(AGENT_PATHS.startup, async (_request, reply) => {
    const started = probe.isUp;
    return reply.code(started ? 200 : 503).send({
      status: started ? 'started' : 'starting',
      lastUpstreamSuccess: probe.lastSuccessAt === undefined ? null : new Date(probe.lastSuccessAt).toISOString(),
    });
  });

  // Ready for new sessions (SPEC §8): what a balancer that steers only new sessions reads.
  app.get(AGENT_PATHS.ready, async (_request, reply) => {
    const reasons = newSessionReasons({ context, probe });
    const leaving = notServingReasons({ context, probe });
    return reply.code(reasons.length === 0 ? 200 : 503).send({
      status: reasons.length === 0 ? 'ready' : 'not ready',
      reasons,
      sessions: sessions.size,
      capacity: sessions.capacity,
      serving: { inRotation: leaving.length === 0, reasons: leaving },
    });
  });

  // The Service's readiness (ADR 0018): in rotation while the sessions held here can be served.
  app.get(AGENT_PATHS.serving, async (_request, reply) => {
    const reasons = notServingReasons({ context, probe });
    return reply.code(reasons.length === 0 ? 200 : 503).send({
      status: reasons.length === 0 ? 'serving' : 'not serving',
      reasons,
      sessions: sessions.size,
      capacity: sessions.capacity,
    });
  });

  app.get(AGENT_PATHS.metrics, async (_request, reply) => {
    metrics.activeSessions.set(sessions.size);
    metrics.sessionUtilization.set(sessions.size / policy.sessionsPerInstance);
    metrics.inFlight.set(context.load.inFlight);
    metrics.openStreams.set(front.openStreams?.() ?? 0);
    metrics.upstreamUp.set(probe.isUp ? 1 : 0);
    metrics.draining.set(context.draining ? 1 : 0);
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  // The session admin API needs the admin token; without one configured it stays closed.
  app.register(async (admin) => {
    admin.addHook('onRequest', async (request, reply) => {
      const expected = context.config.adminToken;
      if (!expected) {
        return reply.code(403).send({
          error: { code: 'ADMIN_DISABLED', message: 'the admin API is off: start the agent with --admin-token' },
        });
      }
      const header = request.headers.authorization ?? '';
      const given = header.startsWith('Bearer ') ? header.slice(7) : '';
      if (!sameToken(given, expected)) {
        return reply
          .code(401)
          .send({ error: { code: 'UNAUTHENTICATED', message: 'send Authorization: Bearer <admin token>' } });
      }
    });

    admin.get(`${AGENT_PATHS.admin}/sessions`, async () => {
      const now = Date.now();
      return {
        instanceId: context.config.instanceId,
        sessions: sessions.list().map((s) => ({
          id: s.id,
          principal: s.principal ?? null,
          createdAt: new Date(s.createdAt).toISOString(),
          ageSeconds: Math.floor((now - s.createdAt) / 1000),
          idleSeconds: Math.floor((now - s.lastActiveAt) / 1000),
          expiresAt: new Date(s.expiresAt).toISOString(),
          inFlight: s.inFlight,
          openStreams: s.openStreams,
        })),
      };
    });

    // What each principal and tenant holds here under policy.limits: requests, streams, live tasks.
    admin.get(`${AGENT_PATHS.admin}/usage`, async () => ({
      instanceId: context.config.instanceId,
      usage: (front.usage?.() ?? []).map((u) => ({ ...u, principal: u.principal ?? null, tenant: u.tenant ?? null })),
    }));

    if (options.fleet) {
      admin.register(fleetAdminRoutes, { fleet: options.fleet });
      admin.register(fleetKillRoutes, { fleet: options.fleet });
    }

    // The kill switch for a principal's MCP 2026 tasks held by this instance only: tasks/cancel
    // upstream. DELETE /admin/fleet/tasks (admin-kill-routes.ts) does it fleet-wide.
    admin.delete(`${AGENT_PATHS.admin}/tasks`, async (request, reply) => {
      const { principal, tenant } = request.query as { principal?: unknown; tenant?: unknown };
      const name = (v: unknown) => typeof v === 'string' && v.length > 0 && v.length <= 256;
      if (!name(principal) || (tenant !== undefined && !name(tenant))) {
        return reply.code(400).send({
          error: {
            code: 'BAD_REQUEST',
            message: 'principal (and tenant, if given) must be non-empty strings of at most 256 characters',
          },
        });
      }
      if (!front.cancelTasks) {
        return reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'this front holds no MCP tasks' } });
      }
      const result = await front.cancelTasks({
        principal: principal as string,
        ...(tenant !== undefined ? { tenant: tenant as string } : {}),
      });
      return { instanceId: context.config.instanceId, ...result };
    });

    admin.delete<{ Params: { id: string } }>(`${AGENT_PATHS.admin}/sessions/:id`, async (request, reply) => {
      const { id } = request.params;
      const ended = front.terminate ? await front.terminate(id) : sessions.end(id, 'terminated');
      if (!ended)
        return reply
          .code(404)
          .send({ error: { code: 'SESSION_NOT_FOUND', message: `no session ${JSON.stringify(id)} on this instance` } });
      return reply.code(200).send({ terminated: id });
    });
  });

  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send({ error: { code: 'NOT_FOUND', message: `no admin route ${request.method} ${request.url.split('?')[0]}` } }),
  );
  return app;
}
