/**
 * What the Copilot CLI sends one client connection, and what it answers about other users: its
 * requests (tool calls, permission prompts) and notifications pass only for the caller's sessions
 * (`session.lifecycle` goes to every connection of the CLI), and the answers that list or point at
 * sessions (`session.list`, `session.getLastId`) are filtered to the caller's. A turn-ending event
 * releases the turn's slot.
 */
import { sameUser } from '../core/tenancy.js';
import type { ClientChannel } from './channel.js';
import {
  type JsonRpcId,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
  paramsOf,
} from './jsonrpc.js';
import { endsTurn } from './methods.js';
import { type Ownership, ownershipOf } from './owners.js';
import type { ProtocolProblem } from './peer.js';

export class CliEvents {
  /** Ids of the CLI's requests waiting for the client's answer. */
  private readonly cliRequests = new Set<JsonRpcId>();

  constructor(private readonly c: ClientChannel) {}

  /** The client's answer to a request of the CLI: passes only if the CLI asked it on this connection. */
  answer(response: JsonRpcResponse, body: Buffer): void {
    if (!this.c.upstream || response.id === null || !this.cliRequests.delete(response.id)) {
      this.c.log.debug({ id: response.id }, 'dropped a response to no pending CLI request');
      return;
    }
    this.c.upstream.sendBody(body);
    this.c.throttleClientIfUpstreamFull();
  }

  async filterList(result: unknown, filter?: unknown): Promise<unknown> {
    const sessions = (result as { sessions?: unknown } | undefined)?.sessions;
    if (!Array.isArray(sessions)) {
      this.c.log.warn('session.list answered in an unknown shape: returning no sessions');
      return { sessions: [] };
    }
    const user = this.c.user;
    const { state } = this.c.options;
    const idOf = (entry: unknown) => (entry as { sessionId?: unknown } | null)?.sessionId;
    const unknown = sessions
      .map(idOf)
      .filter((id): id is string => typeof id === 'string' && state.visibleTo(user, id) === undefined);
    const read = unknown.length > 0 ? await state.owners.resolveMany(unknown) : new Map<string, Ownership>();
    const visible = (id: unknown) => {
      if (typeof id !== 'string') return false;
      const known = state.visibleTo(user, id);
      if (known !== undefined) return known;
      const ownership = read.get(id);
      return ownership?.state === 'owned' && sameUser(ownership.owner, user);
    };
    const own = sessions.filter((entry) => visible(idOf(entry)));
    return { ...(result as object), sessions: [...own, ...(await this.savedElsewhere(own.map(idOf), filter))] };
  }

  /**
   * With staging (ADR 0019) the CLI sees only the sessions loaded on this instance: the caller's
   * other saved sessions are on the shared volume, listed from their files as the CLI lists them.
   * A filter on something the files do not record (repository, branch) lists none of them.
   */
  private async savedElsewhere(listed: unknown[], filter: unknown): Promise<object[]> {
    const staging = this.c.options.state.staging;
    if (!staging) return [];
    const { cwd, ...others } = (filter ?? {}) as { cwd?: unknown };
    if (Object.values(others).some((v) => v !== undefined)) return [];
    const user = this.c.user;
    const tenant = this.c.options.context.config.tenant;
    const seen = new Set(listed);
    const entries: object[] = [];
    for (const saved of await staging.sharedSessions()) {
      if (seen.has(saved.sessionId)) continue;
      const ownership = ownershipOf(saved.metadata, tenant);
      if (ownership.state !== 'owned' || !sameUser(ownership.owner, user)) continue;
      const w = saved.workspace;
      if (cwd !== undefined && w.cwd !== cwd) continue;
      const modified = new Date(w.updated_at ?? saved.modifiedMs);
      entries.push({
        sessionId: saved.sessionId,
        startTime: w.created_at ?? modified.toISOString(),
        modifiedTime: Number.isNaN(modified.getTime())
          ? new Date(saved.modifiedMs).toISOString()
          : modified.toISOString(),
        ...(w.summary || w.name ? { summary: w.summary || w.name } : {}),
        isRemote: false,
        ...(w.cwd ? { context: { cwd: w.cwd } } : {}),
      });
    }
    return entries;
  }

  /** `session.getLastId` / `getForeground`: another user's session id becomes "none". */
  async filterPointer(result: unknown): Promise<unknown> {
    const id = (result as { sessionId?: unknown } | undefined)?.sessionId;
    if (typeof id !== 'string') return result;
    const user = this.c.user;
    const known = this.c.options.state.visibleTo(user, id);
    if (known === true) return result;
    if (known === undefined) {
      const ownership = await this.c.options.state.owners.resolve(id);
      if (ownership.state === 'owned' && sameUser(ownership.owner, user)) return result;
    }
    return {};
  }

  onRequest(request: JsonRpcRequest, body: Buffer): void {
    const sessionId = paramsOf(request).sessionId;
    if (typeof sessionId === 'string' && this.c.options.state.visibleTo(this.c.user, sessionId) === false) {
      this.c.log.warn({ method: request.method, sessionId }, "the CLI sent a request about another user's session");
      this.c.upstream?.send({
        jsonrpc: '2.0',
        id: request.id,
        error: { code: -32603, message: 'the agent does not deliver requests about another user’s session' },
      });
      return;
    }
    this.cliRequests.add(request.id);
    this.c.emit(body);
  }

  onNotification(notification: JsonRpcNotification, body: Buffer): void {
    const params = paramsOf(notification);
    const sessionId = params.sessionId;
    if (typeof sessionId === 'string') {
      if (notification.method === 'session.event' && endsTurn(params.event)) {
        this.c.options.state.turnEnded(sessionId, (params.event as { id?: unknown }).id);
      }
      const visible = this.c.options.state.visibleTo(this.c.user, sessionId);
      // Lifecycle notifications go to every connection of the CLI: only the owner's pass. Events
      // go to the connections holding the session; one about a session of unknown owner is a
      // child of the caller's own (the CLI attached this connection to it).
      if (notification.method === 'session.lifecycle' ? visible !== true : visible === false) return;
    }
    this.c.emit(body);
  }

  onProblem(problem: ProtocolProblem): void {
    if (problem.fatal) {
      this.c.log.error(
        { reason: problem.reason },
        'the Copilot CLI sent a malformed frame: closing this client connection',
      );
    } else {
      this.c.log.warn({ reason: problem.reason }, 'the Copilot CLI sent something that is not JSON-RPC');
    }
  }
}
