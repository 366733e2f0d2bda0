/**
 * One admitted request's claims on the instance — its concurrency slot, its session's in-flight
 * count (or open stream), a reservation for a session being created — released exactly once,
 * however the exchange ends (completed, client gone, upstream failed, session ended, shutdown).
 * Keeping every claim in one object is what makes "no slot ever leaks" checkable.
 */
import type { AgentError } from '../core/errors.js';
import type { Session, SessionTable } from '../core/sessions.js';
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
  private slot = false;
  private inRequest = false;
  private stream: Closable | undefined;
  private counted = true;
  private released = false;

  constructor(private readonly host: TicketHost) {}

  get isStream(): boolean {
    return this.stream !== undefined;
  }

  get holdsSlot(): boolean {
    return this.slot;
  }

  /** Takes a concurrency slot, or says why not. */
  takeSlot(): AgentError | undefined {
    const error = this.host.admission.acquire();
    if (!error) this.slot = true;
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
   * — a stream is not work in progress — and keeps its session from idling instead.
   */
  toStream(closable: Closable): void {
    if (this.released || this.stream) return;
    this.dropSlot();
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
    this.host.admission.release();
  }

  private uncount(): void {
    if (!this.counted) return;
    this.counted = false;
    this.host.requestSettled();
  }
}
