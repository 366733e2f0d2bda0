/**
 * Watches the upstream: an HTTP GET of a path, a TCP connect, or a front-specific check (the
 * Copilot front sends JSON-RPC `ping`). Readiness follows the last result; liveness fails only
 * once the upstream has been unresponsive past a threshold, so a platform restarts the instance
 * (SPEC.md §5: "ping the server, restart it when it stops answering").
 */
import { connect } from 'node:net';
import { request } from 'undici';

export type ProbeCheck = (signal: AbortSignal) => Promise<void>;

export interface UpstreamProbeOptions {
  check: ProbeCheck;
  intervalMs: number;
  /** Unresponsive this long → `healthy` false. */
  unhealthyAfterMs: number;
  /** One check may take at most this long. @default min(intervalMs, 5000) */
  timeoutMs?: number;
  now?: () => number;
  onChange?: (up: boolean, error?: Error) => void;
}

export class UpstreamProbe {
  /** Start of the grace period: the last success, or start-up before the first one. */
  private lastOkAt: number;
  private everOk = false;
  /** Undefined until the first check: its result is reported whichever way it goes. */
  private up: boolean | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private readonly now: () => number;
  private readonly timeoutMs: number;

  constructor(private readonly options: UpstreamProbeOptions) {
    this.now = options.now ?? Date.now;
    // The grace period starts at start-up: an upstream still booting is not yet unhealthy.
    this.lastOkAt = this.now();
    this.timeoutMs = options.timeoutMs ?? Math.min(options.intervalMs, 5000);
  }

  /** True after the last check succeeded. */
  get isUp(): boolean {
    return this.up === true;
  }

  /** False once the upstream has not answered for longer than `unhealthyAfterMs`. */
  get isHealthy(): boolean {
    return this.up === true || this.now() - this.lastOkAt < this.options.unhealthyAfterMs;
  }

  /** When the upstream last answered; undefined if it never has since start-up. */
  get lastSuccessAt(): number | undefined {
    return this.everOk ? this.lastOkAt : undefined;
  }

  start(): void {
    if (this.timer) return;
    void this.checkNow();
    this.timer = setInterval(() => void this.checkNow(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Runs one check now (skipped if one is already running) and returns whether the upstream is up. */
  async checkNow(): Promise<boolean> {
    if (this.running) return this.isUp;
    this.running = true;
    try {
      await this.options.check(AbortSignal.timeout(this.timeoutMs));
      this.lastOkAt = this.now();
      this.everOk = true;
      this.set(true);
    } catch (error) {
      this.set(false, error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.running = false;
    }
    return this.isUp;
  }

  private set(up: boolean, error?: Error): void {
    if (up !== this.up) {
      this.up = up;
      this.options.onChange?.(up, error);
    }
  }
}

/** A TCP connect to host:port. */
export function tcpCheck(host: string, port: number): ProbeCheck {
  return (signal) =>
    new Promise<void>((resolve, reject) => {
      const socket = connect({ host, port });
      const fail = (error: Error) => {
        socket.destroy();
        reject(error);
      };
      signal.addEventListener('abort', () => fail(new Error('probe timed out')), { once: true });
      socket.once('connect', () => {
        socket.end();
        resolve();
      });
      socket.once('error', fail);
    });
}

/** An HTTP GET of `url`; any status below 500 means the server answers. */
export function httpCheck(url: string): ProbeCheck {
  return async (signal) => {
    const response = await request(url, {
      method: 'GET',
      signal,
      headers: { 'user-agent': 'sessionfleet-agent-probe' },
    });
    await response.body.dump();
    if (response.statusCode >= 500) throw new Error(`upstream health check answered ${response.statusCode}`);
  };
}
