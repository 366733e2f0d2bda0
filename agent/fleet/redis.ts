/**
 * Redis connections for the fleet, configured so that a request never hangs on a dead Redis:
 * no offline queue (a command while disconnected fails at once), a short command timeout (a
 * frozen Redis fails the command instead of holding the request), and reconnection forever in
 * the background with a capped back-off, so everything recovers by itself when Redis returns.
 *
 * Plus `ChannelHub`: one subscriber connection shared by every pub/sub listener of an agent
 * (lock wake-ups, admin requests to this instance).
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { RedisEndpoint } from '../../policy/redis-url.js';

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

/** A connection to the fleet store; `endpoint` was parsed once, at start-up (`parseRedisUrl`). */
export function createFleetRedis(endpoint: RedisEndpoint, options: FleetRedisOptions): Redis {
  const maxDelay = options.maxReconnectDelayMs ?? 1000;
  const backOff = (attempt: number) => Math.min(25 * 2 ** Math.min(attempt, 10), maxDelay);
  const redisOptions: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    commandTimeout: options.commandTimeoutMs ?? 1000,
    connectTimeout: options.connectTimeoutMs ?? 2000,
    // With no offline queue a failed command is not retried by ioredis; the caller decides.
    maxRetriesPerRequest: 0,
    retryStrategy: backOff,
    connectionName: options.name,
  };
  let redis: Redis;
  if (endpoint.kind === 'sentinel') {
    redis = new Redis({
      ...redisOptions,
      sentinels: endpoint.sentinels.map(({ host, port }) => ({ host, port })),
      name: endpoint.primaryName,
      ...(endpoint.username === undefined ? {} : { username: endpoint.username }),
      ...(endpoint.password === undefined ? {} : { password: endpoint.password }),
      ...(endpoint.db === undefined ? {} : { db: endpoint.db }),
      ...(endpoint.sentinelUsername === undefined ? {} : { sentinelUsername: endpoint.sentinelUsername }),
      ...(endpoint.sentinelPassword === undefined ? {} : { sentinelPassword: endpoint.sentinelPassword }),
      ...(endpoint.tls ? { tls: {}, enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
      // Keep asking the sentinels while none answers, as for a single server.
      sentinelRetryStrategy: backOff,
      sentinelCommandTimeout: options.commandTimeoutMs ?? 1000,
      // Subscribe to the sentinels' +switch-master: reconnect to a promoted replica as soon as the
      // sentinels agree, instead of when the old primary's socket finally errors.
      failoverDetector: true,
    });
  } else if (endpoint.kind === 'single') {
    redis = new Redis(endpoint.url, redisOptions);
  } else {
    const { lazyConnect: _lazy, enableOfflineQueue: _queue, retryStrategy: _retry, ...nodeOptions } = redisOptions;
    const cluster = new Cluster(
      endpoint.nodes.map(({ host, port }) => ({ host, port })),
      {
        lazyConnect: true,
        enableOfflineQueue: false,
        // Keep asking the seed nodes while none answers, as for a single server.
        clusterRetryStrategy: backOff,
        // A moved slot or a failover is retried briefly by ioredis; a command still failing after
        // that fails to the caller like any other store error.
        retryDelayOnFailover: 100,
        retryDelayOnClusterDown: 100,
        maxRedirections: 8,
        slotsRefreshTimeout: options.connectTimeoutMs ?? 2000,
        // Every fleet key sits in one slot (the {fleet} hash tag): reads and writes go to its primary.
        scaleReads: 'master',
        redisOptions: {
          ...nodeOptions,
          ...(endpoint.username === undefined ? {} : { username: endpoint.username }),
          ...(endpoint.password === undefined ? {} : { password: endpoint.password }),
          ...(endpoint.tls ? { tls: {} } : {}),
        },
      },
    );
    // The fleet uses only what a Cluster shares with a single connection (commands, scripts,
    // pub/sub, `status` and its events); the one keyless command it needs, WAIT, goes through
    // `replicaAcks`, which sends it to the primary of the fleet's slot.
    redis = cluster as unknown as Redis;
  }
  // Connection errors are expected during an outage and reported through `status`; without a
  // listener ioredis would print each one.
  redis.on('error', () => {});
  return redis;
}

/**
 * True for a replicated store whose failover promotes a replica (Sentinel, Cluster): a lock grant
 * is then confirmed by a replica before it is handed out (`lock.ts`).
 */
export function isReplicated(endpoint: RedisEndpoint): boolean {
  return endpoint.kind !== 'single';
}

/** Slot numbers asked of the cluster once per key (CLUSTER KEYSLOT): a fleet's keys share one. */
const slots = new Map<string, number>();
async function slotOf(cluster: Cluster, key: string): Promise<number> {
  let slot = slots.get(key);
  if (slot === undefined) {
    slot = Number(await cluster.call('CLUSTER', 'KEYSLOT', key));
    slots.set(key, slot);
  }
  return slot;
}

/**
 * WAIT for `replicas` replicas to hold this connection's writes so far; the count that did.
 * On a Cluster, WAIT has no key to route by: it goes to the primary serving `slotKey`'s slot (the
 * node connection the writes went through), and asks for no more replicas than that primary has
 * attached (ROLE). A primary with no replica cannot be failed over to one, so there is nothing to
 * wait for; a replica that is attached but stalled still counts, and its silence refuses the grant.
 */
export async function replicaAcks(redis: Redis, slotKey: string, replicas: number, timeoutMs: number): Promise<number> {
  const cluster = redis as unknown as Cluster | Redis;
  if (!(cluster instanceof Cluster)) return redis.wait(replicas, timeoutMs);
  const owner = cluster.slots[await slotOf(cluster, slotKey)]?.[0];
  const primary = cluster.nodes('master').find((node) => `${node.options.host}:${node.options.port}` === owner);
  if (primary === undefined) throw new Error(`the primary of the slot of ${slotKey} is not connected yet`);
  const role = (await primary.call('ROLE')) as [string, number, unknown[]?];
  const attached = role[0] === 'master' && Array.isArray(role[2]) ? role[2].length : 0;
  const wanted = Math.min(replicas, attached);
  if (wanted <= 0) return replicas;
  const acked = await primary.wait(wanted, timeoutMs);
  return acked >= wanted ? replicas : acked;
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
