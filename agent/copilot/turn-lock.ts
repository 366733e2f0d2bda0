/**
 * Serializes the turns of one collaborative session on this instance (SPEC.md §6, local form):
 * a `session.send` waits, first come first served, until the turn before it ended, for at most
 * the policy's `collaborative.lockWaitSeconds`; past that the sender is told the session is busy.
 * The fleet layer replaces this with the Redis lock (fencing tokens, renewal); the waiting rule
 * stays the same.
 */
export class TurnLock {
  private held = false;
  private readonly waiters: Array<{ grant: (granted: boolean) => void; timer: NodeJS.Timeout | undefined }> = [];

  get isHeld(): boolean {
    return this.held;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** Resolves true once the caller holds the lock, false if it was not free within `waitMs`. */
  acquire(waitMs: number): Promise<boolean> {
    if (!this.held) {
      this.held = true;
      return Promise.resolve(true);
    }
    if (waitMs <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter = {
        grant: resolve,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve(false);
        }, waitMs) as NodeJS.Timeout | undefined,
      };
      waiter.timer?.unref();
      this.waiters.push(waiter);
    });
  }

  /** Hands the lock to the next waiter, or frees it. */
  release(): void {
    if (!this.held) return;
    const next = this.waiters.shift();
    if (next) {
      clearTimeout(next.timer);
      next.grant(true);
    } else {
      this.held = false;
    }
  }

  /** The session ended: nobody gets the lock any more. */
  cancel(): void {
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.grant(false);
    }
    this.held = false;
  }
}
