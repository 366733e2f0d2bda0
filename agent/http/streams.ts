/**
 * The long-lived exchanges open now — SSE responses, WebSockets — indexed by session, so that a
 * session that ends (expiry, delete, eviction, terminate, drain) takes its streams with it, and
 * shutdown can close every one. Entries leave as their streams close: nothing grows with the
 * number of sessions ever seen.
 */
export interface Closable {
  /** Ends the stream from the agent's side (idempotent). */
  close(): void;
}

const NO_SESSION = '';

export class OpenStreams {
  private readonly bySession = new Map<string, Set<Closable>>();
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
    }
  }

  remove(sessionId: string | undefined, stream: Closable): void {
    const key = sessionId ?? NO_SESSION;
    const set = this.bySession.get(key);
    if (!set?.delete(stream)) return;
    this.count--;
    if (set.size === 0) this.bySession.delete(key);
  }

  closeSession(sessionId: string): void {
    const set = this.bySession.get(sessionId);
    if (!set) return;
    for (const stream of [...set]) stream.close();
  }

  closeAll(): void {
    for (const set of [...this.bySession.values()]) for (const stream of [...set]) stream.close();
  }
}
