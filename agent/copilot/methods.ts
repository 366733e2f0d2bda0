/**
 * Which Copilot CLI methods a client may call through the agent, and what each needs checked.
 *
 * The CLI isolates nothing between its clients (SPEC.md §3), so this is an allow-list: a method
 * passes only if it is read-only and global (`ping`, `status.get`...), or it is a `session.*`
 * method naming the session it acts on in `params.sessionId` (checked against its owner by the
 * connection). Everything else — `sessions.*`, `account.*`, `user.settings.*`, `plugins.*`,
 * `mcp.config.*`, `runtime.shutdown`, and any method the agent does not know — is refused.
 */
import { AgentError } from '../core/errors.js';

/** Global methods that read nothing private and change nothing shared. */
export const GLOBAL_METHODS: ReadonlySet<string> = new Set([
  'ping',
  'status.get',
  'auth.getStatus',
  'models.list',
  'tools.list',
]);

/**
 * The key, in the CLI's per-session client metadata, under which the agent records the principal
 * that created a session. It lives with the session state, so it survives agent restarts and is
 * seen by every agent that mounts the same state.
 */
export const OWNER_METADATA_KEY = 'sessionfleet/owner';
/**
 * The key under which the agent records the owner's tenant, next to `OWNER_METADATA_KEY`, when
 * the owner has one. A record without it (an owner without a tenant, or one written by an agent of
 * an earlier version, which recorded the principal alone) belongs to the instance's `--tenant`,
 * the tenant of every principal without one of its own; without `--tenant`, to no tenant.
 */
export const OWNER_TENANT_METADATA_KEY = 'sessionfleet/tenant';
export const RESERVED_METADATA_PREFIX = 'sessionfleet/';

/**
 * - `create`, `resume`: load a session, counted against the quota
 * - `delete`, `detach`: end the session (or this connection's hold on it)
 * - `send`: starts a turn, in flight until `session.idle` / `session.error`
 * - `unloaded-ok`: works on a session that is not loaded (metadata of a saved session)
 * - `loaded`: everything else; the session must be loaded on this instance
 */
export type SessionAction = 'create' | 'resume' | 'delete' | 'detach' | 'send' | 'unloaded-ok' | 'loaded';

export type Route =
  | { kind: 'connect' }
  | { kind: 'global' }
  /** `session.list`: forwarded, the result filtered to the caller's sessions. */
  | { kind: 'session-list' }
  /** `session.getLastId`, `session.getForeground`: the returned id is hidden unless it is the caller's. */
  | { kind: 'session-pointer' }
  | { kind: 'session'; sessionId: string; action: SessionAction }
  | { kind: 'refused'; error: AgentError };

const SESSION_ACTIONS: Record<string, SessionAction> = {
  'session.create': 'create',
  'session.resume': 'resume',
  'session.delete': 'delete',
  'session.detach': 'detach',
  'session.send': 'send',
  'session.sendMessages': 'send',
  'session.getMetadata': 'unloaded-ok',
};

/** What the CLI accepts as a session id is narrower; this only keeps junk out of logs and maps. */
const SESSION_ID = /^[\x21-\x7e]{1,128}$/;

export function routeRequest(method: string, params: Record<string, unknown>): Route {
  if (method === 'connect') return { kind: 'connect' };
  if (GLOBAL_METHODS.has(method)) return { kind: 'global' };
  if (!method.startsWith('session.')) {
    return {
      kind: 'refused',
      error: new AgentError(
        'METHOD_FORBIDDEN',
        `${JSON.stringify(method)} reads or changes state the Copilot CLI shares between all of its users`,
        { details: { method } },
      ),
    };
  }
  if (method === 'session.list') return { kind: 'session-list' };
  if (method === 'session.getLastId' || method === 'session.getForeground') return { kind: 'session-pointer' };

  const sessionId = params.sessionId;
  if (sessionId === undefined || sessionId === null) {
    return {
      kind: 'refused',
      error: new AgentError(
        'SESSION_ID_REQUIRED',
        `${method} needs params.sessionId (the agent does not support sessions whose id the CLI chooses)`,
        { details: { method } },
      ),
    };
  }
  if (typeof sessionId !== 'string' || !SESSION_ID.test(sessionId)) {
    return {
      kind: 'refused',
      error: new AgentError('INVALID_SESSION_ID', `params.sessionId of ${method} is not a valid session id`, {
        details: { method },
      }),
    };
  }
  if (method === 'session.metadata.updateClientMetadata') {
    const problem = reservedMetadataProblem(params);
    if (problem) {
      return { kind: 'refused', error: new AgentError('METHOD_FORBIDDEN', problem, { details: { method } }) };
    }
  }
  return { kind: 'session', sessionId, action: SESSION_ACTIONS[method] ?? 'loaded' };
}

/** A client may edit its session's metadata, but not the agent's record of who owns it. */
function reservedMetadataProblem(params: Record<string, unknown>): string | undefined {
  const touches = (key: unknown) => typeof key === 'string' && key.startsWith(RESERVED_METADATA_PREFIX);
  if (params.clear === true) {
    return `clear would remove the agent's ${RESERVED_METADATA_PREFIX}* entries; remove your own keys instead`;
  }
  const set = params.set;
  const remove = params.remove;
  if (
    (typeof set === 'object' && set !== null && Object.keys(set).some(touches)) ||
    (Array.isArray(remove) && remove.some(touches))
  ) {
    return `client metadata keys under ${RESERVED_METADATA_PREFIX} belong to the agent`;
  }
  return undefined;
}

/** While draining, these would start new work; everything else still runs so in-flight turns finish. */
export function startsNewWork(action: SessionAction): boolean {
  return action === 'create' || action === 'resume' || action === 'send';
}

/** `session.event` types that end a turn (as `CopilotSession.sendAndWait` reads them). */
export function endsTurn(event: unknown): boolean {
  if (typeof event !== 'object' || event === null) return false;
  const e = event as { type?: unknown; data?: { mode?: unknown } };
  if (e.type === 'session.error') return true;
  return e.type === 'session.idle' && e.data?.mode !== 'autopilot';
}
