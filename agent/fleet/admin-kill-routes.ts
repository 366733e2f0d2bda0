/**
 * The fleet-wide kill switches for MCP 2026 tasks and open streams (ADR 0025), on the admin API of
 * any agent, behind the same admin token (`admin.ts` registers this plugin inside its protected
 * scope). The agent asked finds the holder — a task's owner in the task registry routing uses, a
 * stream by asking every live agent — and has that agent act (`PeerCalls`):
 *
 *   DELETE /admin/fleet/tasks/:id                      cancel one task where it lives
 *   DELETE /admin/fleet/tasks?principal=&tenant=       cancel a principal's live tasks, fleet-wide
 *   GET    /admin/fleet/streams?principal=&tenant=     the open listen (and GET) streams, fleet-wide
 *   DELETE /admin/fleet/streams/:id                    close one stream where it is open
 *   DELETE /admin/fleet/streams?principal=&tenant=     close a principal's streams, fleet-wide
 *
 * An agent that does not answer in time is named (`unanswered`), never waited on forever.
 */
import type { FastifyInstance } from 'fastify';
import { AGENT_PATHS } from '../../policy/agent-interface.js';
import { AgentError } from '../core/errors.js';
import { sendError } from './admin-routes.js';
import type { FleetAdmin, PeerAnswer, StreamInfo } from './types.js';

export interface FleetKillRoutesOptions {
  fleet: FleetAdmin;
}

const TASKS = `${AGENT_PATHS.admin}/fleet/tasks`;
const STREAMS = `${AGENT_PATHS.admin}/fleet/streams`;

/** `principal` and `tenant` from the query; `principal` required when `needPrincipal`. */
function whoOf(query: Record<string, unknown>, needPrincipal: boolean): { principal?: string; tenant?: string } {
  const problems: string[] = [];
  const out: { principal?: string; tenant?: string } = {};
  for (const name of ['principal', 'tenant'] as const) {
    const value = query[name];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value.length === 0 || value.length > 256) {
      problems.push(`${name} must be a non-empty string of at most 256 characters`);
    } else out[name] = value;
  }
  for (const name of Object.keys(query)) {
    if (name !== 'principal' && name !== 'tenant') problems.push(`unknown filter ${JSON.stringify(name)}`);
  }
  if (needPrincipal && out.principal === undefined && !problems.some((p) => p.startsWith('principal'))) {
    problems.push('principal is required: name whose tasks or streams to end (or end one by its id)');
  }
  if (problems.length > 0) throw new AgentError('BAD_REQUEST', problems.join('; '));
  return out;
}

function silent(instanceId: string, what: string): AgentError {
  return new AgentError(
    'UPSTREAM_TIMEOUT',
    `instance ${JSON.stringify(instanceId)}, which holds ${what}, did not answer`,
    {
      retryAfterSeconds: 1,
      details: { instanceId },
    },
  );
}

/** What a streams call gathered: every answer's streams, and who did not answer. */
function gathered(answers: Array<PeerAnswer<'list-streams' | 'close-streams'>>): {
  streams: StreamInfo[];
  unanswered: string[];
} {
  const streams: StreamInfo[] = [];
  const unanswered: string[] = [];
  for (const answer of answers) {
    if (answer.answered) streams.push(...answer.value);
    else unanswered.push(answer.instanceId);
  }
  streams.sort((a, b) => a.openedAt.localeCompare(b.openedAt) || a.id.localeCompare(b.id));
  return { streams, unanswered: unanswered.sort() };
}

export async function fleetKillRoutes(app: FastifyInstance, options: FleetKillRoutesOptions): Promise<void> {
  const { fleet } = options;

  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof AgentError) return sendError(reply, error);
    throw error;
  });

  const registry = () => {
    if (!fleet.affinityKeys) throw new AgentError('BAD_REQUEST', 'this agent keeps no task inventory');
    return fleet.affinityKeys;
  };

  app.delete<{ Params: { id: string } }>(`${TASKS}/:id`, async (request) => {
    const taskId = request.params.id;
    let location: Awaited<ReturnType<ReturnType<typeof registry>['locate']>>;
    try {
      location = await registry().locate('task', taskId);
    } catch (error) {
      if (error instanceof AgentError) throw error;
      throw new AgentError('STORE_UNAVAILABLE', 'the fleet store (Redis) is unreachable', { retryAfterSeconds: 1 });
    }
    if (location.kind === 'unknown') {
      throw new AgentError(
        'TASK_NOT_FOUND',
        `no live task ${JSON.stringify(taskId)} in the fleet (never created, expired, or its instance is gone)`,
        { details: { taskId } },
      );
    }
    const owner = location.kind === 'local' ? fleet.instanceId : location.instanceId;
    const answer = await fleet.peers.call(owner, 'cancel-task', { taskId });
    if (!answer.answered) throw silent(owner, `task ${JSON.stringify(taskId)}`);
    const result = answer.value;
    switch (result.outcome) {
      case 'cancelled':
        return { taskId, owner, cancelled: true, status: result.status ?? null };
      case 'finished':
        throw new AgentError('TASK_FINISHED', `task ${JSON.stringify(taskId)} has already ${result.status}`, {
          details: { taskId, owner, taskStatus: result.status },
        });
      case 'unknown':
        throw new AgentError(
          'TASK_NOT_FOUND',
          `task ${JSON.stringify(taskId)} is no longer known to the server on instance ${JSON.stringify(owner)}`,
          { details: { taskId, owner } },
        );
      case 'failed':
        throw new AgentError(
          'UPSTREAM_UNAVAILABLE',
          `could not cancel task ${JSON.stringify(taskId)} (${result.reason})`,
          {
            details: { taskId, owner },
          },
        );
    }
  });

  app.delete(TASKS, async (request) => {
    const who = whoOf(request.query as Record<string, unknown>, true);
    const { keys, truncated } = await registry().listFleet({ ...who, limit: 10_000 });
    const tasks = keys.filter((k) => k.kind === 'task');
    const answers = await Promise.all(
      tasks.map(async (k) => ({ task: k, answer: await fleet.peers.call(k.owner, 'cancel-task', { taskId: k.key }) })),
    );
    const out = {
      principal: who.principal!,
      tenant: who.tenant ?? null,
      cancelled: [] as string[],
      finished: [] as string[],
      unknown: [] as string[],
      failed: [] as Array<{ id: string; owner: string; reason: string }>,
      unanswered: [] as Array<{ id: string; owner: string }>,
      truncated,
    };
    for (const { task, answer } of answers) {
      if (!answer.answered) out.unanswered.push({ id: task.key, owner: task.owner });
      else if (answer.value.outcome === 'failed')
        out.failed.push({ id: task.key, owner: task.owner, reason: answer.value.reason });
      else out[answer.value.outcome].push(task.key);
    }
    return out;
  });

  app.get(STREAMS, async (request) => {
    const who = whoOf(request.query as Record<string, unknown>, false);
    const { streams, unanswered } = gathered(await fleet.peers.callAll('list-streams', who));
    return { instanceId: fleet.instanceId, count: streams.length, streams, unanswered };
  });

  app.delete<{ Params: { id: string } }>(`${STREAMS}/:id`, async (request) => {
    const id = request.params.id;
    const { streams, unanswered } = gathered(await fleet.peers.callAll('close-streams', { id }));
    if (streams.length === 0) {
      throw new AgentError(
        'STREAM_NOT_FOUND',
        `no open stream ${JSON.stringify(id)} in the fleet${unanswered.length > 0 ? ` (not answered: ${unanswered.join(', ')})` : ''}`,
        { details: { streamId: id, unanswered } },
      );
    }
    return { closed: streams, unanswered };
  });

  app.delete(STREAMS, async (request) => {
    const who = whoOf(request.query as Record<string, unknown>, true);
    const { streams, unanswered } = gathered(await fleet.peers.callAll('close-streams', who));
    return { principal: who.principal!, tenant: who.tenant ?? null, closed: streams, unanswered };
  });
}
