/**
 * Who may act on a Copilot session through one client connection (SPEC.md §7): the session's
 * owner, checked against the loaded session, else the owner recorded with its saved state; and
 * whether the session is loaded here, else why not, as the error the client gets.
 */
import type { AgentContext } from '../core/context.js';
import { AgentError } from '../core/errors.js';
import type { Session } from '../core/sessions.js';
import type { OwnershipConflictError } from '../fleet/types.js';
import { type ClientChannel, errorText } from './channel.js';
import type { SessionAction } from './methods.js';
import type { Owner, Ownership } from './owners.js';

const EXPIRY_EXPLANATIONS: Partial<Record<string, (policy: AgentContext['policy']) => string>> = {
  'expired-idle': (p) => `was detached after ${p.sessionIdleTimeoutSeconds} s without a request (idle timeout)`,
  'expired-lifetime': (p) => `reached its lifetime of ${p.sessionLifetimeSeconds} s`,
  evicted: () => 'was detached to make room for a newer session (least-recently-used eviction)',
  drained: () => 'was detached because this instance is shutting down',
  terminated: () => 'was ended by an administrator',
};

export class SessionAccess {
  constructor(private readonly c: ClientChannel) {}

  /**
   * Whether this connection's user may act on the session; returns the session's owner: the
   * loaded session's, else the one recorded with its saved state. A session nobody owns yet
   * (absent) is the caller's to create.
   */
  async authorize(sessionId: string, action: SessionAction): Promise<Owner> {
    const loaded = this.c.options.context.sessions.get(sessionId);
    if (loaded) return this.checkOwner(sessionId, ownerOf(loaded), action);
    const ownership = await this.ownership(sessionId);
    if (ownership.state === 'absent') return this.c.user;
    return this.checkOwner(sessionId, ownership.state === 'owned' ? ownership.owner : undefined, action);
  }

  /**
   * Whether this connection's user may create the session: only an id that holds nothing to lose.
   * Another user's session is refused as for any call; the caller's own session that exists —
   * loaded here, or saved on the CLI with history — is refused with SESSION_EXISTS, as a fleet
   * refuses the caller's own session held by another agent, since the CLI would replace it and
   * lose its history: the way back to it is `session.resume`. The owner may create again an id
   * whose session was deleted, or never received a message (the CLI did not save it, so it could
   * not be resumed). Returns the new session's owner: the caller.
   */
  async authorizeCreate(sessionId: string): Promise<Owner> {
    const loaded = this.c.options.context.sessions.get(sessionId);
    if (loaded) {
      this.checkOwner(sessionId, ownerOf(loaded), 'create');
      throw alreadyYours(sessionId);
    }
    const ownership = await this.ownership(sessionId);
    if (ownership.state === 'absent') return this.c.user;
    const owner = this.checkOwner(sessionId, ownership.state === 'owned' ? ownership.owner : undefined, 'create');
    if (await this.savedWithHistory(sessionId)) throw alreadyYours(sessionId);
    return owner;
  }

  /**
   * Whether the CLI holds the session's saved state with history: `sessions.getMetadata` answers a
   * `session` only then (not for a deleted session, nor one that never received a message). Asked
   * on the agent's own connection; when the CLI cannot tell, the create is refused rather than
   * risk replacing a session.
   */
  private async savedWithHistory(sessionId: string): Promise<boolean> {
    // With staging the CLI sees only the sessions loaded here: the shared volume holds the others.
    if (await this.c.options.state.staging?.sharedWithHistory(sessionId)) return true;
    let result: unknown;
    try {
      result = await this.c.options.control.call('sessions.getMetadata', { sessionId });
    } catch (error) {
      this.c.log.warn({ sessionId, err: errorText(error) }, 'could not check whether a Copilot session is saved');
      throw new AgentError(
        'UPSTREAM_UNAVAILABLE',
        `the agent could not check whether session ${JSON.stringify(sessionId)} is saved on the CLI (sessions.getMetadata failed)`,
        { details: { sessionId } },
      );
    }
    return (result as { session?: unknown } | null)?.session != null;
  }

  /**
   * Whether this connection's user may act on a session whose owner is `owner` (undefined: the
   * session records none); returns the owner. A user is a principal in its tenant: a caller of
   * another tenant is refused whatever its name, as on the HTTP front — a principal of the same
   * name in another tenant (or without a tenant) is another user — and collaborative sessions are
   * shared within their tenant only.
   */
  checkOwner(sessionId: string, owner: Owner | undefined, action: SessionAction): Owner {
    if (owner === undefined) {
      throw new AgentError(
        'SESSION_FORBIDDEN',
        `session ${JSON.stringify(sessionId)} was not created through the agent and cannot be used through it`,
        { details: { sessionId } },
      );
    }
    if (owner.tenant !== this.c.tenant) throw anotherUsers(sessionId);
    if (owner.principal === this.c.principal) return owner;
    // Collaborative sessions: anyone who knows the id may join and write; only the owner deletes.
    if (this.c.options.state.collaborative && action !== 'delete' && action !== 'create') return owner;
    throw anotherUsers(sessionId);
  }

  /**
   * The answer to a create or resume that lost the fleet registry to a session registered first
   * (on another agent, or by a concurrent call): another user's (or tenant's) session is refused
   * as it is on a single agent; the caller's own session exists already, so it is to be resumed.
   */
  registeredElsewhere(
    sessionId: string,
    action: 'create' | 'resume',
    holder: OwnershipConflictError['holder'],
  ): AgentError {
    if (holder.principal === undefined) return anotherUsers(sessionId);
    // Throws SESSION_FORBIDDEN for another user's (or tenant's) session, as for one loaded here.
    this.checkOwner(sessionId, { principal: holder.principal, tenant: holder.tenant }, action);
    if (action === 'create') return alreadyYours(sessionId);
    return new AgentError(
      'SESSION_EXISTS',
      `session ${JSON.stringify(sessionId)} was resumed on another instance at the same time, and lives there now`,
      { details: { sessionId } },
    );
  }

  private async ownership(sessionId: string): Promise<Ownership> {
    try {
      return await this.c.options.state.owners.resolve(sessionId);
    } catch (error) {
      this.c.log.warn({ sessionId, err: errorText(error) }, 'could not read the owner of a Copilot session');
      throw new AgentError('UPSTREAM_UNAVAILABLE', 'the agent could not check who owns this session');
    }
  }

  /** The session, loaded on this instance; otherwise why not, as the error the client gets. */
  loadedSession(sessionId: string): Session {
    const { sessions, policy } = this.c.options.context;
    const found = sessions.lookup(sessionId);
    if (found.state === 'active') return found.session;
    const explain = found.state === 'ended' ? EXPIRY_EXPLANATIONS[found.reason] : undefined;
    if (found.state === 'ended' && explain) {
      throw new AgentError(
        'SESSION_EXPIRED',
        `session ${JSON.stringify(sessionId)} ${explain(policy)}; its state is saved, so session.resume continues it; otherwise`,
        { details: { sessionId, reason: found.reason } },
      );
    }
    throw new AgentError(
      'SESSION_NOT_FOUND',
      `session ${JSON.stringify(sessionId)} is not loaded on this instance: session.resume it first; otherwise`,
      { details: { sessionId } },
    );
  }
}

/** The owner of a loaded session: its principal in its tenant (undefined: it records none). */
export function ownerOf(session: Session): Owner | undefined {
  return session.principal === undefined ? undefined : { principal: session.principal, tenant: session.tenant };
}

/** A session of another principal (or tenant): the same refusal wherever it is noticed. */
export function anotherUsers(sessionId: string): AgentError {
  return new AgentError('SESSION_FORBIDDEN', `session ${JSON.stringify(sessionId)} belongs to another user`, {
    details: { sessionId },
  });
}

/** A create of the caller's own session that exists (here, saved, or on another agent): resume it. */
export function alreadyYours(sessionId: string): AgentError {
  return new AgentError(
    'SESSION_EXISTS',
    `session ${JSON.stringify(sessionId)} already exists and is yours, so it cannot be created again`,
    { details: { sessionId } },
  );
}
