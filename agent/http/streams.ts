/**
 * The long-lived exchanges open now — SSE responses, WebSockets — indexed by session, so that a
 * session that ends (expiry, delete, eviction, terminate, drain) takes its streams with it, and
 * shutdown can close every one. Entries leave as their streams close: nothing grows with the
 * number of sessions ever seen. Each stream gets an id of its own when it opens, by which the
 * admin API names it (ADR 0025).
 */
import { randomBytes } from 'node:crypto';

export interface Closable {
  /** Ends the stream from the agent's side (idempotent). */
  close(): void;
  /** When the stream opened and last carried a byte (ms since the epoch), for streams no session bounds. */
  readonly openedAt?: number;
  readonly lastActiveAt?: number;
}

const NO_SESSION = '';

/** An open stream as the admin API sees it. */
export interface OpenStream {
  readonly id: string;
  readonly stream: Closable;
  readonly sessionId: string | undefined;
}

export class OpenStreams {
  private readonly bySession = new Map<string, Set<Closable>>();
  /** Each open stream's id: 72 random bits, base64url, unique in the fleet in practice. */
  private readonly ids = new Map<Closable, string>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Sessions with at least one open stream (the no-session group counts as one). */
  get sessionCount(): number {
    return this.bySession.size;
  }

  add(sessionId: string | undefined, stream: Closable): void {
    const key = sessionId ?? NO_SESSION;
    let set = this.bySession.get(key);
    if (!set) {
      set = new Set();
      this.bySession.set(key, set);
    }
    if (!set.has(stream)) {
      set.add(stream);
      this.count++;
      this.ids.set(stream, `st-${randomBytes(9).toString('base64url')}`);
    }
  }

  /** Every open stream, with its id and session. */
  *entries(): Iterable<OpenStream> {
    for (const [key, set] of this.bySession) {
      for (const stream of set) {
        const id = this.ids.get(stream);
        if (id !== undefined) yield { id, stream, sessionId: key === NO_SESSION ? undefined : key };
      }
    }
  }

  remove(sessionId: string | undefined, stream: Closable): void {
    const key = sessionId ?? NO_SESSION;
    const set = this.bySession.get(key);
    if (!set?.delete(stream)) return;
    this.count--;
    this.ids.delete(stream);
    if (set.size === 0) this.bySession.delete(key);
  }

  closeSession(sessionId: string): void {
    const set = this.bySession.get(sessionId);
    if (!set) return;
    for (const stream of [...set]) stream.close();
  }

  /**
   * Streams no session holds (MCP 2026 `subscriptions/listen`, a stateless upstream's GET stream)
   * are bounded by the session rules as if they were one: closed `lifetimeMs` after they opened,
   * or after `idleMs` without a byte (0: no idle bound). Returns how many were closed.
   */
  sweepSessionless(now: number, lifetimeMs: number, idleMs: number): number {
    const set = this.bySession.get(NO_SESSION);
    if (!set) return 0;
    let closed = 0;
    for (const stream of [...set]) {
      const opened = stream.openedAt ?? now;
      const active = stream.lastActiveAt ?? opened;
      if (now - opened >= lifetimeMs || (idleMs > 0 && now - active >= idleMs)) {
        stream.close();
        closed++;
      }
    }
    return closed;
  }

  /** Closes the streams no session holds: they carry no work, so a drain ends them first. */
  closeSessionless(): void {
    const set = this.bySession.get(NO_SESSION);
    if (set) for (const stream of [...set]) stream.close();
  }

  closeAll(): void {
    for (const set of [...this.bySession.values()]) for (const stream of [...set]) stream.close();
  }
}
