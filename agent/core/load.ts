/**
 * Concurrency per instance (SPEC.md §4): requests in flight summed over every session. A request
 * that finds the instance at its limit is throttled (429), it never queues.
 */
export class InstanceLoad {
  private current = 0;
  constructor(readonly limit: number) {}

  get inFlight(): number {
    return this.current;
  }

  /** Takes a slot if one is free. Every true must be paired with one `release()`. */
  tryAcquire(): boolean {
    if (this.current >= this.limit) return false;
    this.current++;
    return true;
  }

  release(): void {
    if (this.current > 0) this.current--;
  }
}
