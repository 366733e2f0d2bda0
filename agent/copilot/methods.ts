/**
 * What a client's request to the Copilot CLI is, for the agent, and whether it may pass. Each
 * method's class comes from `method-table.ts` (what it touches); this adds the rules: server-wide
 * methods are refused but for the read-only ones the SDK calls at start; `session.*` methods must
 * name the session they act on in `params.sessionId` (checked against its owner by the connection);
 * host-access methods pass only where the policy allows them (`hostAccessAllowed`); a method the
 * table does not know is refused.
 */

import type { Policy } from '../../policy/index.js';
import { AgentError } from '../core/errors.js';
import { sessionIdProblem } from '../core/session-id.js';
import { COPILOT_METHODS, methodClass } from './method-table.js';
import { configDirRefusal, sessionStoreRefusal } from './session-store.js';

/** Global methods that read nothing private and change nothing shared. */
export const GLOBAL_METHODS: ReadonlySet<string> = new Set(
  Object.entries(COPILOT_METHODS)
    .filter(([, c]) => c.touches === 'server-wide' && c.global === true)
    .map(([method]) => method),
);

/** What the connection's policy lets through besides the table's classes. */
export interface RouteOptions {
  /** Host-access methods (shell, files, plugins, extensions, MCP servers, logs) pass. */
  readonly hostAccess: boolean;
}

/**
 * Whether host-access methods may pass under `policy`: only where the host holds no other
 * principal's state — session isolation with the instance recycled after each session and state
 * kept on the instance — unless the policy opts in with `copilotHostAccess`. Shared, tenant and
 * request isolation put several principals' sessions on one CLI; a shared state volume
 * (`sharedSessionState`) holds every user's state; an instance that is not recycled keeps the
 * previous session's state on its disk — unless the agent stages state (`staged`: the shared
 * volume is the agent's alone and the app's directory holds only the session it serves, ADR 0019).
 */
export function hostAccessAllowed(
  policy: Pick<Policy, 'isolation' | 'sharedSessionState' | 'recycleAfterSession' | 'copilotHostAccess'>,
  staged = false,
): boolean {
  if (policy.copilotHostAccess === true) return true;
  return policy.isolation === 'session' && (!policy.sharedSessionState || staged) && policy.recycleAfterSession;
}

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

const SECURE_DEFAULT: RouteOptions = { hostAccess: false };

export function routeRequest(
  method: string,
  params: Record<string, unknown>,
  options: RouteOptions = SECURE_DEFAULT,
): Route {
  const known = methodClass(method);
  if (known?.touches === 'connect') return { kind: 'connect' };
  if (known === undefined && method.startsWith('session.')) {
    return {
      kind: 'refused',
      error: new AgentError(
        'METHOD_FORBIDDEN',
        `${JSON.stringify(method)} is not in the agent's table of Copilot methods (docs/copilot-methods.md), so it is not forwarded`,
        { details: { method } },
      ),
    };
  }
  if (known === undefined || known.touches === 'server-wide') {
    if (known?.global === true) return { kind: 'global' };
    return {
      kind: 'refused',
      error: new AgentError(
        'METHOD_FORBIDDEN',
        `${JSON.stringify(method)} reads or changes state the Copilot CLI shares between all of its users`,
        { details: { method } },
      ),
    };
  }
  if ('list' in known) return { kind: 'session-list' };
  if ('pointer' in known) return { kind: 'session-pointer' };
  if (known.touches === 'host' && !options.hostAccess) {
    return {
      kind: 'refused',
      error: new AgentError(
        'METHOD_FORBIDDEN',
        `${JSON.stringify(method)} reaches the host the Copilot CLI runs on (${known.host}), which holds other users' session state under this policy; the policy field copilotHostAccess opts in`,
        { details: { method, host: known.host } },
      ),
    };
  }

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
  const problem = sessionIdProblem(sessionId);
  if (problem !== undefined || typeof sessionId !== 'string') {
    // The length and character rule keeps its message; an id that is not one path segment says so.
    const why = problem?.startsWith('it is not') === false ? ` (${problem})` : '';
    return {
      kind: 'refused',
      error: new AgentError('INVALID_SESSION_ID', `params.sessionId of ${method} is not a valid session id${why}`, {
        details: { method },
      }),
    };
  }
  // Params that would leave a session's prompts on the instance: the CLI's cross-session store, a
  // session's own configDir (ADR 0024).
  const paramRefusal = sessionStoreRefusal(method, params) ?? configDirRefusal(method, params);
  if (paramRefusal) return { kind: 'refused', error: paramRefusal };
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
