/**
 * The upstream probe's latest verdict on this instance's app, shared with the parts that decide
 * what the instance offers: in a fleet, an instance whose app does not answer offers no slot, so
 * new sessions are placed on healthy peers (docs/adr/0018). Up until the probe says otherwise.
 */
export class UpstreamHealth {
  private up = true;
  private readonly listeners: Array<(up: boolean) => void> = [];

  get isUp(): boolean {
    return this.up;
  }

  /** Records the probe's verdict; listeners hear each change once. */
  set(up: boolean): void {
    if (up === this.up) return;
    this.up = up;
    for (const listener of this.listeners) listener(up);
  }

  onChange(listener: (up: boolean) => void): void {
    this.listeners.push(listener);
  }
}
