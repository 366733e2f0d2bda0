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

/** A live key of this instance, for the inventory. */
export interface LiveKey extends KeyHolder {
  readonly kind: KeyKind;
  readonly key: string;
  readonly expiresAt: number;
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

  constructor(private readonly now: () => number = Date.now) {}

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
}

/** The fleet's keys in Redis, this instance's own also in memory. */
export class RedisAffinityKeys extends LocalAffinityKeys {
  constructor(
    private readonly redis: Redis,
    private readonly keys: FleetKeys,
    private readonly instanceId: string,
  ) {
    super();
    if (typeof (redis as Partial<Redis>).sfKeyRecord !== 'function') {
      redis.defineCommand('sfKeyRecord', { numberOfKeys: 1, lua: KEY_RECORD });
      redis.defineCommand('sfKeyLocate', { numberOfKeys: 3, lua: KEY_LOCATE });
    }
  }

  private keyOf(kind: KeyKind, key: string): string {
    return `${this.keys.prefix}${kind}:${key}`;
  }

  override async record(kind: KeyKind, key: string, holder: KeyHolder, ttlMs: number): Promise<void> {
    this.remember(kind, key, holder, ttlMs);
    await this.redis.sfKeyRecord(
      this.keyOf(kind, key),
      this.instanceId,
      holder.principal ?? '',
      holder.tenant ?? '',
      Math.max(1, Math.round(ttlMs)),
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
