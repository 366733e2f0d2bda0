/**
 * The `session.*` requests of one Copilot client connection: checked against the session's owner
 * (`access.ts`), routed (`session-routing.ts`), then served on this instance's CLI — loads taking
 * a slot of the session quota, deletes and detaches ending the agent's side, sends starting a
 * turn (under the collaborative lock when the policy shares sessions).
 */
import { AgentError, sessionBusy } from '../core/errors.js';
import type { Session } from '../core/sessions.js';
import type { Decision } from '../routing/index.js';
import { alreadyYours, ownerOf, type SessionAccess } from './access.js';
import { type ClientChannel, errorText } from './channel.js';
import type { JsonRpcRequest } from './jsonrpc.js';
import { OWNER_METADATA_KEY, OWNER_TENANT_METADATA_KEY, type SessionAction, startsNewWork } from './methods.js';
import type { Owner } from './owners.js';
import type { FleetDecision, Reroute, SessionRouting } from './session-routing.js';
import type { Slot } from './state.js';

export class SessionRequests {
  constructor(
    private readonly c: ClientChannel,
    private readonly access: SessionAccess,
    private readonly routing: SessionRouting,
  ) {}

  /**
   * `onSessionRequest`, its failure answered. `decided`: the router's second decision, after the
   * owner it first named answered "not the owner".
   */
  handle(
    request: JsonRpcRequest,
    sessionId: string,
    action: SessionAction,
    slot: Slot,
    decided?: Promise<Decision>,
  ): void {
    this.onSessionRequest(request, sessionId, action, slot, decided).catch((error: unknown) => {
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
    decided: Promise<Decision> | undefined,
  ): Promise<void> {
    const { context, state } = this.c.options;
    if (context.draining && startsNewWork(action)) {
      throw new AgentError('DRAINING', 'this instance is shutting down and takes no new sessions or turns');
    }
    const reroute: Reroute = (next) => this.handle(request, sessionId, action, slot, next);
    const decision = await this.routing.routeSession(request, sessionId, action, slot, reroute, decided);
    if (decision.kind === 'done') return;
    const owner = decision.owner ?? (await this.access.authorize(sessionId, action));
    switch (action) {
      case 'create':
      case 'resume':
        await this.load(request, sessionId, action, slot, owner, decision, reroute);
        return;
      case 'delete':
        // With staging the CLI deletes only what it has: a saved session not loaded here is staged
        // in first (the caller is its owner), and its shared copy goes with it.
        await state.stageIn(sessionId);
        this.c.forward(request, slot, {
          after: async (response) => {
            const result = response.result as { success?: unknown } | undefined;
            if (response.error || result?.success === false) {
              state.unstage(sessionId);
              return;
            }
            this.c.held.delete(sessionId);
            this.c.loadParams.delete(sessionId);
            context.sessions.end(sessionId, 'deleted');
            // Answered once the shared copy is gone: a list or resume right after finds nothing.
            await state.deleted(sessionId);
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
      case 'unloaded-ok': {
        // A saved session not loaded here is on the shared volume only: staged in for the call
        // (the caller is its owner) and removed again after it.
        const staged = state.staging !== undefined && !state.isLoaded(sessionId);
        if (staged) await state.stageIn(sessionId);
        this.c.forward(request, slot, staged ? { after: () => state.unstage(sessionId) } : {});
        return;
      }
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
    decided: Extract<FleetDecision, { kind: 'here' }>,
    reroute: Reroute,
  ): Promise<void> {
    const { context, state, router } = this.c.options;
    const principal = this.c.principal!;
    let session = context.sessions.get(sessionId);
    let admitting = decided.admission;
    if (!session && !admitting) {
      // Served here as loaded, it ended since (its lifetime ran out meanwhile): the router
      // decides again, as for any session that is not loaded.
      const again = await this.routing.routeSession(request, sessionId, action, slot, reroute);
      if (again.kind === 'done') return;
      admitting = again.admission;
      session = context.sessions.get(sessionId);
    }
    // Re-homed here by this resume (its owner died): given up again if the CLI cannot resume it.
    const adopted = decided.adopted === true;
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
    const { staging } = state;
    const undo = () => {
      // A resume that failed leaves nothing of the session in the app's directory.
      if (staging && (reserved || adopted) && !state.isLoaded(sessionId))
        void staging.clearApp(sessionId).catch(() => {});
      if (adopted) void router.abandon(sessionId);
      if (reserved) admitting?.undo();
      if (action === 'create' && reserved) {
        if (previousOwner === undefined) state.owners.forget(sessionId);
        else state.owners.bind(sessionId, previousOwner);
      }
    };
    // Staged in only now that the caller is authorized and the session placed (or re-homed) here,
    // and only when it is not loaded here already (the app's copy is then the live one).
    if (staging && action === 'resume') {
      try {
        await state.stageIn(sessionId);
      } catch (error) {
        undo();
        throw error;
      }
    }
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
          // The owner's record reaches the shared volume at once: another instance asked for this
          // id finds it taken, not free to create.
          if (staging) await this.writeBack(sessionId);
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

  private async writeBack(sessionId: string): Promise<void> {
    try {
      await this.c.options.state.staging?.writeBack(sessionId);
    } catch (error) {
      this.c.log.error({ sessionId, err: errorText(error) }, 'could not write the new session state back');
    }
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
   * A collaborative send: the router's lock sequence (the same lock and answers with and without
   * `--redis`: wait in line, bounded, leave it when the client goes away, fence where the write
   * lands), then the turn holds the lease until it ends. The CLI cannot check a fencing token, so
   * this agent — where every write to the session lands — is where the router checks it.
   */
  private async sendUnderLock(request: JsonRpcRequest, session: Session, slot: Slot): Promise<void> {
    const { state, router } = this.c.options;
    const locked = await router.lockForWrite(session.id, { signal: this.c.clientGone.signal }, state.lockWaitMs);
    switch (locked.kind) {
      case 'left':
        this.c.log.debug({ sessionId: session.id }, 'a waiting send left the lock queue: its client went away');
        slot.release();
        return;
      case 'refused':
        throw locked.error;
      case 'ended':
        // Says how it ended (expired, evicted...), as for any call on an ended session.
        this.access.loadedSession(session.id);
        throw sessionBusy(session.id, 'it was loaded again while this send waited', 1);
      case 'held': {
        const { lease } = locked;
        let current: Session;
        try {
          // The session may have ended since the router checked it.
          current = this.access.loadedSession(session.id);
        } catch (error) {
          void lease.release();
          throw error;
        }
        const turn = state.beginTurn(current, slot, () => void lease.release());
        this.c.forward(request, slot, { turn });
        return;
      }
    }
  }
}
