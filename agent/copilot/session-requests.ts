/**
 * The `session.*` requests of one Copilot client connection: checked against the session's owner
 * (`access.ts`), routed (`session-routing.ts`), then served on this instance's CLI — loads taking
 * a slot of the session quota, deletes and detaches ending the agent's side, sends starting a
 * turn (under the collaborative lock when the policy shares sessions).
 */
import { AgentError, sessionBusy } from '../core/errors.js';
import type { Session } from '../core/sessions.js';
import type { LockLease } from '../fleet/lock.js';
import { alreadyYours, ownerOf, type SessionAccess } from './access.js';
import { type ClientChannel, errorText } from './channel.js';
import type { JsonRpcRequest } from './jsonrpc.js';
import { OWNER_METADATA_KEY, OWNER_TENANT_METADATA_KEY, type SessionAction, startsNewWork } from './methods.js';
import type { Owner } from './owners.js';
import type { FleetAdmission, SessionRouting } from './session-routing.js';
import type { Slot } from './state.js';

export class SessionRequests {
  constructor(
    private readonly c: ClientChannel,
    private readonly access: SessionAccess,
    private readonly routing: SessionRouting,
  ) {}

  /** `onSessionRequest`, its failure answered; `retried`: a hop's owner answered "not the owner" once. */
  handle(request: JsonRpcRequest, sessionId: string, action: SessionAction, slot: Slot, retried: boolean): void {
    this.onSessionRequest(request, sessionId, action, slot, retried).catch((error: unknown) => {
      slot.release();
      if (error instanceof AgentError) this.c.reject(request.id, error);
      else this.c.internalError(request, error);
    });
  }

  private async onSessionRequest(
    request: JsonRpcRequest,
    sessionId: string,
    action: SessionAction,
    slot: Slot,
    retried = false,
  ): Promise<void> {
    const { context, state } = this.c.options;
    if (context.draining && startsNewWork(action)) {
      throw new AgentError('DRAINING', 'this instance is shutting down and takes no new sessions or turns');
    }
    const reroute = retried ? undefined : () => this.handle(request, sessionId, action, slot, true);
    const decision = await this.routing.routeSession(
      request,
      sessionId,
      action,
      slot,
      this.c.options.coordinator,
      reroute,
    );
    if (decision.kind === 'done') return;
    const owner = decision.owner ?? (await this.access.authorize(sessionId, action));
    switch (action) {
      case 'create':
      case 'resume':
        await this.load(request, sessionId, action, slot, owner, decision.admission);
        return;
      case 'delete':
        this.c.forward(request, slot, {
          after: (response) => {
            const result = response.result as { success?: unknown } | undefined;
            if (response.error || result?.success === false) return;
            this.c.held.delete(sessionId);
            this.c.loadParams.delete(sessionId);
            context.sessions.end(sessionId, 'deleted');
            this.c.log.info({ sessionId, principal: this.c.principal }, 'Copilot session deleted');
          },
        });
        return;
      case 'detach':
        if (!state.isAttached(sessionId, this.c)) {
          // Already let go of (expiry, eviction): the client's wish holds; the CLI has nothing to do.
          slot.release();
          this.c.emit({ jsonrpc: '2.0', id: request.id, result: { success: true } });
          return;
        }
        this.c.forward(request, slot, {
          after: (response) => {
            if (response.error) return;
            this.c.held.delete(sessionId);
            state.letGo(sessionId, this.c, 'detached');
          },
        });
        return;
      case 'unloaded-ok':
        this.c.forward(request, slot);
        return;
      case 'send':
        await this.send(request, this.access.loadedSession(sessionId), slot);
        return;
      case 'loaded': {
        const session = this.access.loadedSession(sessionId);
        context.sessions.beginRequest(session);
        this.c.forward(request, slot, { session });
        return;
      }
    }
  }

  /** `session.create` / `session.resume`: takes a slot of the session quota unless it is loaded already. */
  private async load(
    request: JsonRpcRequest,
    sessionId: string,
    action: 'create' | 'resume',
    slot: Slot,
    owner: Owner,
    admission?: FleetAdmission,
  ): Promise<void> {
    const { context, state } = this.c.options;
    const principal = this.c.principal!;
    let session = context.sessions.get(sessionId);
    let admitting = admission;
    if (!session && !admitting) {
      // Routed to this instance as loaded, it ended since (its lifetime ran out meanwhile): it is
      // placed again, like any session that is not loaded.
      const placed = await this.routing.placeNew(request, sessionId, action, slot, this.c.options.coordinator);
      if (placed.kind === 'done') return;
      admitting = placed.admission;
      session = context.sessions.get(sessionId);
    }
    let reserved = false;
    let bound = owner;
    if (session) {
      admitting?.unused();
      // Loaded since the owner check (a concurrent create or resume of the same id got here
      // first): it belongs to whoever loaded it, so check again against that owner. A create
      // racing another create is refused here — another user's as such, the caller's own with
      // SESSION_EXISTS — never let through to replace the session on the CLI.
      bound = this.access.checkOwner(sessionId, ownerOf(session), action);
      if (action === 'create') throw alreadyYours(sessionId);
    } else if (admitting) {
      // The coordinator creates the table entry (slot, principal) before the CLI is asked.
      session = await admitting.admit();
      reserved = true;
    } else {
      throw new Error(`session ${JSON.stringify(sessionId)} was neither loaded nor placed`);
    }
    const previousOwner = state.owners.known(sessionId);
    // Bound now, so the CLI's lifecycle notifications about the new session already reach its owner.
    if (action === 'create') state.owners.bind(sessionId, bound);
    const undo = () => {
      if (reserved) admitting?.undo();
      if (action === 'create' && reserved) {
        if (previousOwner === undefined) state.owners.forget(sessionId);
        else state.owners.bind(sessionId, previousOwner);
      }
    };
    context.sessions.beginRequest(session);
    this.c.forward(request, slot, {
      session,
      abandoned: undo,
      after: async (response) => {
        if (response.error) {
          undo();
          return;
        }
        this.c.held.add(sessionId);
        this.c.loadParams.set(sessionId, request.params);
        state.attach(sessionId, this.c, this.c.user, bound);
        if (action === 'create') {
          context.metrics.sessionsCreated.inc({ front: 'copilot' });
          await this.persistOwner(sessionId, bound);
        }
        this.c.log.info(
          { sessionId, principal, ...(bound.principal !== principal ? { owner: bound.principal } : {}) },
          action === 'create' ? 'Copilot session created' : 'Copilot session resumed',
        );
        // Ended (its lifetime ran out) while it was loading: let go of it at once.
        if (!context.sessions.get(sessionId)) void this.c.detachUpstream(sessionId);
      },
    });
  }

  /**
   * Records the owner — its principal, and its tenant if it has one — with the session's state on
   * the CLI, where a restarted agent finds it.
   */
  private async persistOwner(sessionId: string, owner: Owner): Promise<void> {
    try {
      await this.c.options.control.call('session.metadata.updateClientMetadata', {
        sessionId,
        // An id created again (after a delete) by its owner keeps no tenant of an earlier record.
        remove: [OWNER_TENANT_METADATA_KEY],
        set: {
          [OWNER_METADATA_KEY]: owner.principal,
          ...(owner.tenant !== undefined ? { [OWNER_TENANT_METADATA_KEY]: owner.tenant } : {}),
        },
      });
    } catch (error) {
      this.c.log.warn(
        { sessionId, err: errorText(error) },
        'could not record the owner with the Copilot session: after an agent restart nobody can resume it',
      );
    }
  }

  private async send(request: JsonRpcRequest, session: Session, slot: Slot): Promise<void> {
    const { state } = this.c.options;
    if (!state.collaborative) {
      this.c.forward(request, slot, { turn: state.beginTurn(session, slot) });
      return;
    }
    await this.sendUnderLock(request, session, slot);
  }

  /**
   * A collaborative send: waits in line for the session's lock — the coordinator's, so the same
   * lock and the same answers with and without `--redis` (in-process `MemoryLock`, or the fleet's
   * Redis lock: FIFO, bounded wait, renewed while the turn runs) — and holds it until the turn
   * ends. A send whose client goes away while it waits leaves the line at once. The CLI cannot
   * check a fencing token, so this agent — where every write to the session lands — checks it
   * (`fence.admit`) before the write.
   */
  private async sendUnderLock(request: JsonRpcRequest, session: Session, slot: Slot): Promise<void> {
    const { state } = this.c.options;
    const { lock, fence } = this.c.options.coordinator;
    const gone = this.c.clientGone.signal;
    let lease: LockLease;
    try {
      lease = await lock.acquire(session.id, { waitMs: state.lockWaitMs, signal: gone });
    } catch (error) {
      if (gone.aborted) {
        this.c.log.debug({ sessionId: session.id }, 'a waiting send left the lock queue: its client went away');
        slot.release();
        return;
      }
      if (error instanceof AgentError && error.code === 'SESSION_BUSY') {
        // An ended session says so rather than "busy".
        this.access.loadedSession(session.id);
        throw sessionBusy(session.id, 'another write holds its lock', error.retryAfterSeconds);
      }
      throw error;
    }
    if (gone.aborted) {
      // Granted as the client left: nobody is there to write for.
      void lease.release();
      slot.release();
      return;
    }
    let current: Session;
    try {
      if (!fence.admit(session.id, lease.token)) throw sessionBusy(session.id, 'a newer writer holds its lock', 1);
      // The session may have ended while this send waited for the lock.
      current = this.access.loadedSession(session.id);
    } catch (error) {
      void lease.release();
      throw error;
    }
    const turn = state.beginTurn(current, slot, () => void lease.release());
    this.c.forward(request, slot, { turn });
  }
}
