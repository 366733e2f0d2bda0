/**
 * What the Copilot front knows about the sessions loaded on its CLI beyond the shared session
 * table: which client connections hold each one (the CLI unloads a session when its last
 * attached connection lets go), the turns in flight (a collaborative turn holds the session's
 * lock, the coordinator's, until it ends), and who joined.
 * It also ends the agent's side of a session, whatever ended it: the table's expiry, eviction,
 * drain or the admin API call `onEnd`, which detaches the session on the CLI so its state is
 * saved and it unloads. With staging (`--app-state-dir`, ADR 0019) every session that leaves
 * the instance is then written back to the shared volume and its private copy removed, and every
 * turn's end writes the state back.
 */
import type { AgentContext } from '../core/context.js';
import { AgentError } from '../core/errors.js';
import type { EndReason, Session } from '../core/sessions.js';
import type { StateStaging } from '../core/state-staging.js';
import { sameUser } from '../core/tenancy.js';
import type { Owner, OwnerDirectory } from './owners.js';

export interface Attachment {
  readonly connectionId: number;
  /** Sends `session.detach` on this connection's upstream; never rejects. */
  detachUpstream(sessionId: string): Promise<void>;
}

/** One unit of the instance's concurrency (a request in flight, or a turn). Release is idempotent. */
export interface Slot {
  release(): void;
  /**
   * Gives back only the caller's request budget (`policy.limits`), keeping the concurrency unit:
   * the call is forwarded to the owner agent, whose hop counts it — turn included (ADR 0025).
   */
  releaseBudget?(): void;
}

/** A `session.send` turn: holds a concurrency slot and keeps the session busy until it ends. */
export interface Turn {
  release(): void;
}

interface LiveSession {
  readonly attached: Set<Attachment>;
  /** Principals other than the owner that joined (collaborative sessions). */
  readonly members: Set<string>;
  readonly turns: Set<Turn>;
  /** Ids of the last turn-ending events seen: with several connections attached each gets a copy. */
  readonly recentTurnEnds: string[];
}

/** Reasons after which the CLI has let go of the session by itself. */
const ALREADY_UNLOADED: ReadonlySet<EndReason> = new Set(['deleted', 'detached', 'upstream-closed']);

export class CopilotState {
  private readonly live = new Map<string, LiveSession>();
  private readonly detaching = new Set<Promise<void>>();
  private idleWaiters: Array<() => void> = [];
  readonly collaborative: boolean;
  readonly lockWaitMs: number;
  /** `sessionfleet_request_duration_seconds` for this front, labels resolved once. */
  readonly durations: Record<'ok' | 'error', { observe(seconds: number): void }>;

  constructor(
    private readonly context: AgentContext,
    readonly owners: OwnerDirectory,
    /** Staging between the shared volume and the app's directory, when `--app-state-dir` is set. */
    readonly staging?: StateStaging,
  ) {
    const collaborative = context.policy.collaborative;
    this.collaborative = collaborative?.enabled === true;
    this.lockWaitMs = (collaborative?.lockWaitSeconds ?? 0) * 1000;
    context.onSessionEnd((session, reason) => this.onEnd(session, reason));
    const histogram = context.metrics.requestDuration;
    this.durations = {
      ok: histogram.labels({ front: 'copilot', outcome: 'ok' }),
      error: histogram.labels({ front: 'copilot', outcome: 'error' }),
    };
  }

  /** Takes one unit of the instance's concurrency, or undefined when it is exhausted. */
  acquireSlot(): Slot | undefined {
    if (!this.context.load.tryAcquire()) return undefined;
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.context.load.release();
        if (this.context.load.inFlight === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          for (const resolve of waiters) resolve();
        }
      },
    };
  }

  /** Resolves once no request and no turn is in flight. */
  whenIdle(): Promise<void> {
    if (this.context.load.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Records that `connection`, of user `caller`, holds the session on the CLI (it created or
   * resumed it). A caller other than the owner joined it (collaborative; always of its tenant).
   */
  attach(sessionId: string, connection: Attachment, caller: Owner, owner: Owner): void {
    const live = this.liveOf(sessionId);
    live.attached.add(connection);
    if (!sameUser(caller, owner)) live.members.add(caller.principal);
  }

  /**
   * `connection` let go of the session (its `session.detach`, or it closed). The session ends
   * when no connection holds it any more: the CLI has unloaded it.
   */
  letGo(sessionId: string, connection: Attachment, reason: 'detached' | 'upstream-closed'): void {
    const live = this.live.get(sessionId);
    if (!live?.attached.delete(connection)) return;
    if (live.attached.size === 0) this.context.sessions.end(sessionId, reason);
  }

  /** Whether any connection holds the session on the CLI here (its app copy is then the live one). */
  isLoaded(sessionId: string): boolean {
    return (this.live.get(sessionId)?.attached.size ?? 0) > 0;
  }

  /**
   * Copies the session's saved state from the shared volume into the app's directory before the
   * CLI loads it here (ADR 0019) — unless a connection here holds it already. Call it only once the
   * caller is authorized. No-op without staging.
   */
  async stageIn(sessionId: string): Promise<void> {
    if (!this.staging || this.isLoaded(sessionId)) return;
    try {
      const found = await this.staging.stageIn(sessionId);
      this.context.logger.debug({ sessionId, found }, "staged the session state into the app's directory");
    } catch (error) {
      if (error instanceof AgentError) throw error;
      this.context.logger.error(
        { sessionId, err: error instanceof Error ? error.message : String(error) },
        'could not stage the session state in',
      );
      throw new AgentError(
        'STATE_STAGING_FAILED',
        `the agent could not copy the saved state of session ${JSON.stringify(sessionId)} from the shared volume into the Copilot CLI's directory`,
        { details: { sessionId } },
      );
    }
  }

  /** The session was deleted on the CLI: its shared copy goes too (ADR 0019). No-op without staging. */
  async deleted(sessionId: string): Promise<void> {
    if (this.staging) await this.track(this.leave(sessionId, 'deleted'));
  }

  /** A copy staged in for a call that failed: removed unless a connection here holds the session. */
  unstage(sessionId: string): void {
    if (!this.staging || this.isLoaded(sessionId)) return;
    this.track(this.staging.clearApp(sessionId).catch(() => {}));
  }

  isAttached(sessionId: string, connection: Attachment): boolean {
    return this.live.get(sessionId)?.attached.has(connection) ?? false;
  }

  /** The owner the agent knows without I/O: the loaded session's, else the cached binding. */
  knownOwner(sessionId: string): Owner | undefined {
    const loaded = this.context.sessions.get(sessionId);
    if (loaded?.principal !== undefined) return { principal: loaded.principal, tenant: loaded.tenant };
    return this.owners.known(sessionId);
  }

  /**
   * Whether the user `caller` may see the session, from what is known without I/O: undefined when
   * the owner is not known here. A principal of the owner's name in another tenant is another user.
   */
  visibleTo(caller: Owner, sessionId: string): boolean | undefined {
    const owner = this.knownOwner(sessionId);
    if (owner === undefined) return undefined;
    if (sameUser(owner, caller)) return true;
    if (owner.tenant !== caller.tenant) return false;
    return this.collaborative && (this.live.get(sessionId)?.members.has(caller.principal) ?? false);
  }

  /**
   * Starts a turn of a loaded session: it holds `slot` and keeps the session busy (never idle-
   * expired or evicted) until the session reports the turn's end, the send fails, or it ends.
   */
  beginTurn(session: Session, slot: Slot, onRelease?: () => void): Turn {
    const live = this.liveOf(session.id);
    this.context.sessions.beginRequest(session);
    let released = false;
    const turn: Turn = {
      release: () => {
        if (released) return;
        released = true;
        live.turns.delete(turn);
        this.context.sessions.endRequest(session);
        slot.release();
        onRelease?.();
      },
    };
    live.turns.add(turn);
    return turn;
  }

  /**
   * A turn-ending event (`session.idle`, `session.error`) arrived for the session: every turn of it
   * ends. The CLI queues sends to a busy session and goes idle once it has worked through them, so
   * releasing all is exact for that queue; the one race (an idle of an older turn crossing a new
   * send) frees a slot early, which never leaks one.
   */
  turnEnded(sessionId: string, eventId: unknown): void {
    const live = this.live.get(sessionId);
    if (!live) return;
    if (typeof eventId === 'string') {
      if (live.recentTurnEnds.includes(eventId)) return;
      live.recentTurnEnds.push(eventId);
      if (live.recentTurnEnds.length > 8) live.recentTurnEnds.shift();
    }
    for (const turn of [...live.turns]) turn.release();
    // What the turn wrote reaches the shared volume now, not only when the session leaves: an
    // instance that dies later loses at most the turn in flight.
    if (this.staging) this.track(this.save(sessionId));
  }

  /**
   * Resolves when the `session.detach` calls sent for ended sessions have been answered, and the
   * state of every session that left has been written back.
   */
  async detachesSettled(): Promise<void> {
    while (this.detaching.size > 0) await Promise.allSettled([...this.detaching]);
    await this.staging?.settled();
  }

  get loadedCount(): number {
    return this.live.size;
  }

  private liveOf(sessionId: string): LiveSession {
    let live = this.live.get(sessionId);
    if (!live) {
      live = { attached: new Set(), members: new Set(), turns: new Set(), recentTurnEnds: [] };
      this.live.set(sessionId, live);
    }
    return live;
  }

  private onEnd(session: Session, reason: EndReason): void {
    const live = this.live.get(session.id);
    this.live.delete(session.id);
    if (!live) return;
    // Releasing the turns releases their collaborative lock: the sends waiting for it find the
    // session ended and are told so.
    for (const turn of [...live.turns]) turn.release();
    const detaches: Promise<void>[] = [];
    if (!ALREADY_UNLOADED.has(reason)) {
      // Expired, evicted, drained or terminated: every connection holding it detaches, the CLI
      // saves and unloads it; the client's next call for it gets SESSION_EXPIRED until it resumes it.
      for (const connection of live.attached) detaches.push(this.track(connection.detachUpstream(session.id)));
    }
    // Once the CLI has let go (and saved), the state leaves the app's directory for the shared volume.
    if (this.staging) this.track(Promise.all(detaches).then(() => this.leave(session.id, reason)));
  }

  private track(work: Promise<void>): Promise<void> {
    this.detaching.add(work);
    void work.finally(() => this.detaching.delete(work));
    return work;
  }

  private async save(sessionId: string): Promise<void> {
    try {
      await this.staging?.writeBack(sessionId);
    } catch (error) {
      this.context.logger.error(
        { sessionId, err: error instanceof Error ? error.message : String(error) },
        'could not write the session state back to the shared volume after a turn',
      );
    }
  }

  private async leave(sessionId: string, reason: EndReason): Promise<void> {
    try {
      await this.staging?.release(sessionId, reason === 'deleted' ? 'delete' : 'save');
      this.context.logger.debug(
        { sessionId, reason },
        "session state written back and removed from the app's directory",
      );
    } catch (error) {
      this.context.logger.error(
        { sessionId, reason, err: error instanceof Error ? error.message : String(error) },
        "could not write the session state back to the shared volume (the app's copy is removed all the same)",
      );
    }
  }
}
