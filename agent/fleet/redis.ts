/**
 * Redis connections for the fleet, configured so that a request never hangs on a dead Redis:
 * no offline queue (a command while disconnected fails at once), a short command timeout (a
 * frozen Redis fails the command instead of holding the request), and reconnection forever in
 * the background with a capped back-off, so everything recovers by itself when Redis returns.
 *
 * Plus `ChannelHub`: one subscriber connection shared by every pub/sub listener of an agent
 * (lock wake-ups, admin requests to this instance).
 */
import { Redis, type RedisOptions } from 'ioredis';

export interface FleetRedisOptions {
  /** Shown in CLIENT LIST, which helps when reading a busy Redis. */
  name: string;
  /** @default 1000 */
  commandTimeoutMs?: number;
  /** @default 2000 */
  connectTimeoutMs?: number;
  /** Longest pause between reconnection attempts. @default 1000 */
  maxReconnectDelayMs?: number;
}

export function createFleetRedis(url: string, options: FleetRedisOptions): Redis {
  const maxDelay = options.maxReconnectDelayMs ?? 1000;
  const redisOptions: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    commandTimeout: options.commandTimeoutMs ?? 1000,
    connectTimeout: options.connectTimeoutMs ?? 2000,
    // With no offline queue a failed command is not retried by ioredis; the caller decides.
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(25 * 2 ** Math.min(attempt, 10), maxDelay),
    connectionName: options.name,
  };
  const redis = new Redis(url, redisOptions);
  // Connection errors are expected during an outage and reported through `status`; without a
  // listener ioredis would print each one.
  redis.on('error', () => {});
  return redis;
}

/** Connects, but gives up after `timeoutMs` and leaves ioredis reconnecting in the background. */
export async function connectWithin(redis: Redis, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return true;
  let timer: NodeJS.Timeout | undefined;
  const ready = new Promise<boolean>((resolve) => {
    redis.once('ready', () => resolve(true));
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  if (redis.status === 'wait') redis.connect().catch(() => {});
  const ok = await ready;
  clearTimeout(timer);
  return ok;
}

export function isRedisUp(redis: Redis): boolean {
  return redis.status === 'ready';
}

type Listener = (message: string) => void;

export class ChannelHub {
  private readonly listeners = new Map<string, Set<Listener>>();
  /** The SUBSCRIBE of each channel, so a second listener waits for the first one's confirmation. */
  private readonly subscriptions = new Map<string, Promise<boolean>>();

  constructor(readonly subscriber: Redis) {
    subscriber.on('message', (channel: string, message: string) => {
      for (const listener of this.listeners.get(channel) ?? []) listener(message);
    });
    // ioredis re-subscribes what it had subscribed; channels whose SUBSCRIBE failed while Redis was
    // away are subscribed here once it is back.
    subscriber.on('ready', () => {
      if (this.listeners.size > 0) subscriber.subscribe(...this.listeners.keys()).catch(() => {});
    });
  }

  /**
   * Listens on a channel until `off()` is called. Never throws: `subscribed` is false when Redis
   * was unreachable, in which case the listener stays registered and is subscribed when Redis
   * returns (callers that cannot wait for that, like lock waiters, also poll).
   */
  async listen(channel: string, listener: Listener): Promise<{ off: () => void; subscribed: boolean }> {
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
    }
    set.add(listener);
    const off = () => {
      const current = this.listeners.get(channel);
      if (!current?.delete(listener) || current.size > 0) return;
      this.listeners.delete(channel);
      this.subscriptions.delete(channel);
      if (this.subscriber.status === 'ready') this.subscriber.unsubscribe(channel).catch(() => {});
    };
    let subscription = this.subscriptions.get(channel);
    if (!subscription) {
      subscription = this.subscriber.subscribe(channel).then(
        () => true,
        () => {
          this.subscriptions.delete(channel);
          return false;
        },
      );
      this.subscriptions.set(channel, subscription);
    }
    return { off, subscribed: await subscription };
  }
}
