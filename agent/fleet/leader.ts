/**
 * One agent at a time does the fleet's housekeeping (registry sweep, session-state cleanup): the
 * one holding the janitor lock. It is the collaborative lock itself, taken without waiting and kept
 * by the lock's own renewal, so leadership moves on by itself within one lock TTL when the leader
 * dies, and a leader whose renewal failed knows it (the lease's signal) before doing more work.
 */
import type { LockLease, SessionLock } from './lock.js';

/** A space never occurs in a session id, so this resource can never be a session's lock. */
export const JANITOR_RESOURCE = ' janitor';

export class LeaderLease {
  private lease: LockLease | undefined;

  constructor(
    private readonly lock: SessionLock,
    private readonly resource: string,
    private readonly ttlMs: number,
  ) {}

  get isLeader(): boolean {
    return this.lease !== undefined && !this.lease.signal.aborted;
  }

  /** Takes the lead if nobody holds it; true while this agent leads. Never waits, never throws. */
  async tryLead(): Promise<boolean> {
    if (this.isLeader) return true;
    this.lease = undefined;
    try {
      this.lease = await this.lock.acquire(this.resource, { waitMs: 0, ttlMs: this.ttlMs });
      return true;
    } catch {
      return false;
    }
  }

  async resign(): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    await lease?.release();
  }
}
