/**
 * The HTTP front's side of the fleet-wide kill switches (ADR 0025): what the agent that holds a
 * task or a stream does when the admin API of any agent asks it (through `PeerCalls`).
 *
 * - A task: asked `tasks/get` first, so a task that already finished is said to be finished (and
 *   one the server forgot, unknown) rather than "cancelled"; a live one gets `tasks/cancel`, and
 *   stops counting against its creator's task budget.
 * - A stream: the exchanges admitted as streams (an MCP 2026 `subscriptions/listen`, a GET event
 *   stream) are listed by their id and caller, and closed the way a drain closes them — the
 *   upstream request aborted, the client's response ended with its last chunk, so the client sees
 *   the stream end cleanly (and may listen again).
 */
import type { Pool } from 'undici';
import type { StreamFilter, StreamInfo, TaskCancelOutcome } from '../core/context.js';
import type { Budgets } from '../routing/index.js';
import { Exchange } from './exchange.js';
import type { HttpFrontSettings } from './options.js';
import type { OpenStream, OpenStreams } from './streams.js';
import { upstreamTaskCall } from './upstream.js';

/** The Tasks extension's terminal statuses (SEP-2663). */
const TERMINAL: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled']);

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export async function cancelHeldTask(
  upstream: { pool: Pool; settings: HttpFrontSettings; budgets: Budgets },
  task: { id: string; path: string },
): Promise<TaskCancelOutcome> {
  const { pool, settings, budgets } = upstream;
  let before: Awaited<ReturnType<typeof upstreamTaskCall>>;
  try {
    before = await upstreamTaskCall(pool, settings, task, 'tasks/get');
  } catch (error) {
    return { outcome: 'failed', reason: `tasks/get: ${errorText(error)}` };
  }
  // The spec's answer for an unknown task is a JSON-RPC error (-32602), not an HTTP one.
  if (before.answer?.error !== undefined) return { outcome: 'unknown' };
  const status = before.answer?.result?.status;
  if (before.status !== 200 || typeof status !== 'string') {
    return { outcome: 'failed', reason: `tasks/get answered HTTP ${before.status} without a task status` };
  }
  if (TERMINAL.has(status)) {
    budgets.taskEnded(task.id);
    return { outcome: 'finished', status };
  }
  try {
    const cancelled = await upstreamTaskCall(pool, settings, task, 'tasks/cancel');
    if (cancelled.status !== 200 || cancelled.answer?.result === undefined) {
      const why = cancelled.answer?.error?.message;
      return {
        outcome: 'failed',
        reason: `tasks/cancel answered HTTP ${cancelled.status}${typeof why === 'string' ? `: ${why}` : ''}`,
      };
    }
  } catch (error) {
    return { outcome: 'failed', reason: `tasks/cancel: ${errorText(error)}` };
  }
  budgets.taskEnded(task.id);
  const after = await upstreamTaskCall(pool, settings, task, 'tasks/get').catch(() => undefined);
  const now = after?.answer?.result?.status;
  return typeof now === 'string' ? { outcome: 'cancelled', status: now } : { outcome: 'cancelled' };
}

/** An open stream as the admin API lists it; undefined for what is not an admitted stream. */
function describe(open: OpenStream, instanceId: string, now: number): StreamInfo | undefined {
  const { stream } = open;
  if (!(stream instanceof Exchange) || !stream.ticket.claimedStream || stream.isDone) return undefined;
  const caller = stream.ticket.caller;
  const openedAt = stream.openedAt ?? now;
  return {
    id: open.id,
    kind: stream.req.method === 'GET' ? 'get' : 'listen',
    instanceId,
    principal: caller?.principal ?? null,
    tenant: caller?.tenant ?? null,
    sessionId: open.sessionId ?? null,
    openedAt: new Date(openedAt).toISOString(),
    idleSeconds: Math.max(0, Math.floor((now - (stream.lastActiveAt ?? openedAt)) / 1000)),
  };
}

function matches(info: StreamInfo, filter: StreamFilter & { id?: string }): boolean {
  return (
    (filter.id === undefined || info.id === filter.id) &&
    (filter.principal === undefined || info.principal === filter.principal) &&
    (filter.tenant === undefined || info.tenant === filter.tenant)
  );
}

export function listHeldStreams(streams: OpenStreams, instanceId: string, filter: StreamFilter): StreamInfo[] {
  const now = Date.now();
  const out: StreamInfo[] = [];
  for (const open of streams.entries()) {
    const info = describe(open, instanceId, now);
    if (info && matches(info, filter)) out.push(info);
  }
  return out.sort((a, b) => a.openedAt.localeCompare(b.openedAt) || a.id.localeCompare(b.id));
}

export function closeHeldStreams(
  streams: OpenStreams,
  instanceId: string,
  filter: StreamFilter & { id?: string },
): StreamInfo[] {
  // Nothing is closed without a name: an empty filter would close every stream of the instance.
  if (filter.id === undefined && filter.principal === undefined) return [];
  const now = Date.now();
  const closing: Array<{ info: StreamInfo; stream: OpenStream['stream'] }> = [];
  for (const open of streams.entries()) {
    const info = describe(open, instanceId, now);
    if (info && matches(info, filter)) closing.push({ info, stream: open.stream });
  }
  for (const { stream } of closing) stream.close();
  return closing.map((c) => c.info);
}
