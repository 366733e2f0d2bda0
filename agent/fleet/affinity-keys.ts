/**
 * Affinity keys: state that MCP 2026-07-28 traffic carries explicitly instead of a session — a
 * task id (Tasks extension: `tools/call` answered `resultType: "task"`, then `tasks/*` with the id
 * in `Mcp-Name`) or a server-minted handle the policy names — tied to the instance that holds it
 * and to the principal (and tenant) that created it.
 *
 * Every agent keeps the keys its own instance holds in memory, so a request for one of them is
 * decided with no Redis command. With `--redis` each key is also a HASH `{owner, principal,
 * tenant}` under the fleet's prefix (one hash tag: Cluster-safe) whose PX TTL is the task's
 * `ttlMs`, capped by the policy; any agent finds the owner there and learns, in the same script,
 * whether its lease is alive. Without Redis there is one instance: a key held nowhere here is
 * unknown.
 */
import type { Redis, Result } from 'ioredis';
import type { FleetKeys } from './keys.js';
import { KEY_LOCATE, KEY_RECORD } from './lua/affinity-keys.js';

export type KeyKind = 'task' | 'handle';

/** Who created a key: only the same principal in the same tenant may use it. */
export interface KeyHolder {
  readonly principal: string | undefined;
  readonly tenant: string | undefined;
}

export type KeyLocation =
  /** Held by this instance. */
  | { readonly kind: 'local'; readonly holder: KeyHolder }
  /** Held by another live instance of the fleet. */
  | { readonly kind: 'remote'; readonly instanceId: string; readonly advertise: string; readonly holder: KeyHolder }
  /** Never recorded, expired, or its owner's lease ran out (its state went with it). */
  | { readonly kind: 'unknown' };

/** A live key, for the inventory. */
export interface LiveKey extends KeyHolder {
  readonly kind: KeyKind;
  readonly key: string;
  /** ms since the epoch. */
  readonly expiresAt: number;
}

/** A live key of the fleet, with the instance that holds it. */
export interface FleetKey extends LiveKey {
  readonly owner: string;
}

export interface KeyFilter {
  readonly principal?: string;
  readonly tenant?: string;
  /** @default 1000 */
  readonly limit?: number;
}

export interface AffinityKeyStore {
  /** This instance's own key, from memory (no Redis command); undefined if not held here. */
  local(kind: KeyKind, key: string): KeyHolder | undefined;
  /** Records a key as held by this instance for `ttlMs` (fleet-wide with Redis). */
  record(kind: KeyKind, key: string, holder: KeyHolder, ttlMs: number): Promise<void>;
  /** Where a key lives: here, on another live instance, or nowhere. Throws when Redis is unreachable. */
  locate(kind: KeyKind, key: string): Promise<KeyLocation>;
  /** This instance's live keys. */
  list(): LiveKey[];
  /** The fleet's live keys (this instance's without Redis), filtered, at most `limit`. */
  listFleet(filter?: KeyFilter): Promise<{ keys: FleetKey[]; truncated: boolean }>;
}

function matches(key: KeyHolder, filter: KeyFilter): boolean {
  return (
    (filter.principal === undefined || key.principal === filter.principal) &&
    (filter.tenant === undefined || key.tenant === filter.tenant)
  );
}

/** Keys remembered in memory at most (oldest dropped first): bounds the agent's memory. */
export const MAX_LOCAL_KEYS = 100_000;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    sfKeyRecord(...args: Array<string | number>): Result<unknown, Context>;
    sfKeyLocate(...args: Array<string | number>): Result<unknown[], Context>;
  }
}

/** The keys held by this instance, in memory. Used alone without Redis. */
export class LocalAffinityKeys implements AffinityKeyStore {
  private readonly held = new Map<string, LiveKey>();

  constructor(
    private readonly now: () => number = Date.now,
    protected readonly owner = '',
  ) {}

  local(kind: KeyKind, key: string): KeyHolder | undefined {
    const id = `${kind}\n${key}`;
    const found = this.held.get(id);
    if (!found) return undefined;
    if (found.expiresAt <= this.now()) {
      this.held.delete(id);
      return undefined;
    }
    return found;
  }

  async record(kind: KeyKind, key: string, holder: KeyHolder, ttlMs: number): Promise<void> {
    this.remember(kind, key, holder, ttlMs);
  }

  protected remember(kind: KeyKind, key: string, holder: KeyHolder, ttlMs: number): void {
    const id = `${kind}\n${key}`;
    this.held.delete(id);
    if (this.held.size >= MAX_LOCAL_KEYS) {
      const oldest = this.held.keys().next().value;
      if (oldest !== undefined) this.held.delete(oldest);
    }
    this.held.set(id, {
      kind,
      key,
      principal: holder.principal,
      tenant: holder.tenant,
      expiresAt: this.now() + ttlMs,
    });
  }

  async locate(kind: KeyKind, key: string): Promise<KeyLocation> {
    const holder = this.local(kind, key);
    return holder ? { kind: 'local', holder } : { kind: 'unknown' };
  }

  list(): LiveKey[] {
    const now = this.now();
    return [...this.held.values()].filter((k) => k.expiresAt > now);
  }

  async listFleet(filter: KeyFilter = {}): Promise<{ keys: FleetKey[]; truncated: boolean }> {
    const limit = filter.limit ?? 1000;
    const all = this.list()
      .filter((k) => matches(k, filter))
      .map((k) => ({ ...k, owner: this.owner }));
    return { keys: all.slice(0, limit), truncated: all.length > limit };
  }
}

/** The fleet's keys in Redis, this instance's own also in memory. */
export class RedisAffinityKeys extends LocalAffinityKeys {
  constructor(
    private readonly redis: Redis,
    private readonly keys: FleetKeys,
    private readonly instanceId: string,
  ) {
    super(Date.now, instanceId);
    if (typeof (redis as Partial<Redis>).sfKeyRecord !== 'function') {
      redis.defineCommand('sfKeyRecord', { numberOfKeys: 2, lua: KEY_RECORD });
      redis.defineCommand('sfKeyLocate', { numberOfKeys: 3, lua: KEY_LOCATE });
    }
  }

  private keyOf(kind: KeyKind, key: string): string {
    return `${this.keys.prefix}${kind}:${key}`;
  }

  private get index(): string {
    return `${this.keys.prefix}index:keys`;
  }

  override async listFleet(filter: KeyFilter = {}): Promise<{ keys: FleetKey[]; truncated: boolean }> {
    const limit = filter.limit ?? 1000;
    // Live members by expiry; the hashes say who holds and created each (a filter reads them all).
    const members = await this.redis.zrangebyscore(this.index, Date.now(), '+inf', 'WITHSCORES');
    const pipeline = this.redis.pipeline();
    const found: Array<{ kind: KeyKind; key: string; expiresAt: number }> = [];
    for (let i = 0; i < members.length; i += 2) {
      const [kind, ...rest] = members[i]!.split('\n');
      if (kind !== 'task' && kind !== 'handle') continue;
      const key = rest.join('\n');
      found.push({ kind, key, expiresAt: Number(members[i + 1]) });
      pipeline.hmget(this.keyOf(kind, key), 'owner', 'principal', 'tenant');
    }
    const replies = found.length > 0 ? ((await pipeline.exec()) ?? []) : [];
    const keys: FleetKey[] = [];
    let truncated = false;
    found.forEach((k, i) => {
      const [owner, principal, tenant] = (replies[i]?.[1] ?? []) as Array<string | null>;
      if (!owner) return;
      const entry = { ...k, owner, principal: principal || undefined, tenant: tenant || undefined };
      if (!matches(entry, filter)) return;
      if (keys.length >= limit) truncated = true;
      else keys.push(entry);
    });
    return { keys, truncated };
  }

  override async record(kind: KeyKind, key: string, holder: KeyHolder, ttlMs: number): Promise<void> {
    this.remember(kind, key, holder, ttlMs);
    await this.redis.sfKeyRecord(
      this.keyOf(kind, key),
      this.index,
      this.instanceId,
      holder.principal ?? '',
      holder.tenant ?? '',
      Math.max(1, Math.round(ttlMs)),
      `${kind}\n${key}`,
    );
  }

  override async locate(kind: KeyKind, key: string): Promise<KeyLocation> {
    const here = this.local(kind, key);
    if (here) return { kind: 'local', holder: here };
    const reply = await this.redis.sfKeyLocate(this.keyOf(kind, key), this.keys.leases, this.keys.address);
    if (!Array.isArray(reply) || reply.length < 5) return { kind: 'unknown' };
    const [owner, principal, tenant, alive, address] = reply.map((v) => String(v));
    const holder: KeyHolder = { principal: principal || undefined, tenant: tenant || undefined };
    // This instance restarted since (its memory is empty) or the owner's lease ran out: the task's
    // state is gone with the instance that held it.
    if (owner === this.instanceId || alive !== '1' || !address) return { kind: 'unknown' };
    return { kind: 'remote', instanceId: owner!, advertise: address, holder };
  }
}
