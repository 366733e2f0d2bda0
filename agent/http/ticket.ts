/**
 * One admitted request's claims on the instance — its concurrency slot, its session's in-flight
 * count (or open stream), a reservation for a session being created — released exactly once,
 * however the exchange ends (completed, client gone, upstream failed, session ended, shutdown).
 * Keeping every claim in one object is what makes "no slot ever leaks" checkable.
 */
import type { AgentError } from '../core/errors.js';
import type { Session, SessionTable } from '../core/sessions.js';
import type { Caller } from '../core/tenancy.js';
import type { Admission, Reservation } from './admission.js';
import type { Closable, OpenStreams } from './streams.js';

export interface TicketHost {
  readonly sessions: SessionTable;
  readonly admission: Admission;
  readonly streams: OpenStreams;
  /** Called once per ticket when it stops counting as a request in flight (drain waits on these). */
  requestSettled(): void;
}

export class Ticket {
  session: Session | undefined;
  reservation: Reservation | undefined;
  /** Who sent the request (set at intake): its requests and streams count against its budgets. */
  caller: Caller | undefined;
  /** `"<Mcp-Method> <Mcp-Name>"` of a request whose tool has a concurrency limit, while it holds a call slot. */
  private tool: string | undefined;
  /** A stream place: taken at admission (`budgeted`), or counted when the response turned into one. */
  private streamPlace: 'none' | 'budgeted' | 'counted' = 'none';
  private slot = false;
  /** The caller's request budget is held with the slot. */
  private budgeted = false;
  private inRequest = false;
  private stream: Closable | undefined;
  private counted = true;
  private released = false;

  constructor(private readonly host: TicketHost) {}

  get isStream(): boolean {
    return this.stream !== undefined;
  }

  /** Admitted as a stream (`claimStream`): its event-stream response gives its slot back. */
  get claimedStream(): boolean {
    return this.streamPlace === 'budgeted';
  }

  get holdsSlot(): boolean {
    return this.slot;
  }

  /**
   * Takes a concurrency slot — and, with `policy.limits`, the caller's request budget and the
   * tool's call slot (`tool`: its `"<Mcp-Method> <Mcp-Name>"`) — or says why not (all or nothing).
   */
  takeSlot(tool?: string): AgentError | undefined {
    const { admission } = this.host;
    const error = admission.acquire();
    if (error) return error;
    this.slot = true;
    if (this.caller) {
      const refused = admission.budgets.acquire('requests', this.caller);
      if (refused) {
        this.dropSlot();
        return refused;
      }
      this.budgeted = true;
    }
    if (tool !== undefined) {
      const refused = admission.budgets.acquireTool(tool);
      if (refused) {
        this.dropSlot();
        return refused;
      }
      this.tool = tool;
    }
    return undefined;
  }

  /**
   * The request opens a long-lived stream (an MCP 2026 `subscriptions/listen`, a GET stream): it
   * takes a stream place (`limits.streamsPerInstance`, the caller's stream budget) now, so a
   * full instance refuses it before the upstream is asked. `sessionless`: a stream no session
   * holds (a draining instance opens none).
   */
  claimStream(sessionless: boolean): AgentError | undefined {
    if (this.streamPlace !== 'none' || !this.caller) return undefined;
    const error = this.host.admission.acquireStream(this.caller, sessionless);
    if (!error) this.streamPlace = 'budgeted';
    return error;
  }

  /** The request belongs to `session` from now on: it counts as in flight there. */
  attach(session: Session): void {
    this.session = session;
    this.host.sessions.beginRequest(session);
    this.inRequest = true;
  }

  /**
   * The exchange became a long-lived stream (SSE, WebSocket): it gives its concurrency slot back
   * — a stream is not work in progress — and keeps its session from idling instead. An event
   * stream not admitted as one is counted in `streamsPerInstance`; a WebSocket
   * (`takesStreamPlace` false) is bounded by its session, as before.
   */
  toStream(closable: Closable, takesStreamPlace = true): void {
    if (this.released || this.stream) return;
    this.dropSlot();
    if (this.streamPlace === 'none' && takesStreamPlace) {
      this.host.admission.countStream();
      this.streamPlace = 'counted';
    }
    const session = this.session;
    if (session) {
      if (this.inRequest) this.host.sessions.endRequest(session);
      this.host.sessions.openStream(session);
    }
    this.inRequest = false;
    this.stream = closable;
    this.host.streams.add(session?.id, closable);
    this.uncount();
  }

  /** A stream whose session became known after it opened (the SSE `endpoint` event). */
  streamJoins(session: Session): void {
    if (this.released || !this.stream || this.session) return;
    this.host.streams.remove(undefined, this.stream);
    this.session = session;
    this.host.sessions.openStream(session);
    this.host.streams.add(session.id, this.stream);
  }

  cancelReservation(): void {
    if (this.reservation) this.host.admission.cancel(this.reservation);
    this.reservation = undefined;
  }

  /** Gives everything back. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.cancelReservation();
    this.dropSlot();
    if (this.streamPlace !== 'none') {
      this.host.admission.releaseStream(this.caller, this.streamPlace === 'budgeted');
      this.streamPlace = 'none';
    }
    const session = this.session;
    if (this.stream) {
      this.host.streams.remove(session?.id, this.stream);
      if (session) this.host.sessions.closeStream(session);
    } else if (session && this.inRequest) {
      this.host.sessions.endRequest(session);
    }
    this.inRequest = false;
    this.uncount();
  }

  private dropSlot(): void {
    if (!this.slot) return;
    this.slot = false;
    const { admission } = this.host;
    admission.release();
    if (this.budgeted && this.caller) admission.budgets.release('requests', this.caller);
    this.budgeted = false;
    if (this.tool !== undefined) admission.budgets.releaseTool(this.tool);
    this.tool = undefined;
  }

  private uncount(): void {
    if (!this.counted) return;
    this.counted = false;
    this.host.requestSettled();
  }
}
