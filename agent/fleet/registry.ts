/**
 * Typed calls to the registry scripts (`scripts.ts`) plus the plain reads the admin API needs.
 * Nothing here decides policy: the coordinator does. One method per script, each passing the
 * script's reply through its one decoder (`replies.ts`) and returning a discriminated union so
 * callers handle every outcome.
 */
import type { Redis } from 'ioredis';
import type { FleetKeys } from './keys.js';
import {
  decodeCancel,
  decodeEnd,
  decodeHeartbeat,
  decodeLeave,
  decodeOpen,
  decodePlace,
  decodeRecord,
  decodeResolve,
  decodeResync,
  decodeScaleGauge,
  decodeSweep,
  type EndedReason,
  type EndResult,
  endedReason,
  type HeartbeatResult,
  type InstanceView,
  type OpenResult,
  type PlaceResult,
  type ResolveResult,
  type ResyncResult,
  type SessionRecord,
  type SweepResult,
} from './replies.js';
import { defineFleetCommands, registryKeys } from './scripts.js';

// The reply types moved to `replies.ts` with their decoders; importers of this module keep them.
export type {
  EndedReason,
  EndResult,
  FleetMember,
  HeartbeatResult,
  InstanceView,
  OpenResult,
  PlaceResult,
  ResolveResult,
  ResyncResult,
  SessionRecord,
  SweepResult,
} from './replies.js';
export { decodeRecord } from './replies.js';

/**
 * What this instance can take, judged live rather than from its last heartbeat: `open` (a free
 * slot, or for other instances to decide), `evict` (full, but may evict an idle session), `closed`
 * (draining or its concurrency exhausted: place nothing here).
 */
export type SelfMode = 'open' | 'evict' | 'closed';

/**
 * The memory of ended ids: each is kept `ttlMs` (one session lifetime) after its end, at most
 * `cap` ids; a `ttlMs` or `cap` of 0 remembers nothing.
 */
export interface EndedMemory {
  readonly ttlMs: number;
  readonly cap: number;
}

export interface LocalSessionState {
  id: string;
  principal: string | undefined;
  tenant: string | undefined;
  createdAt: number;
  expiresAt: number;
  resumable: boolean;
  lastActiveAt: number;
}

export interface InstanceInfo extends InstanceView {
  readonly alive: boolean;
  readonly info: Record<string, unknown>;
}

export class FleetRegistry {
  private readonly keyList: string[];

  /** How ended ids are remembered; the coordinator sets it from the policy's lifetime. */
  memory: EndedMemory = { ttlMs: 0, cap: 0 };

  constructor(
    readonly redis: Redis,
    readonly keys: FleetKeys,
  ) {
    defineFleetCommands(redis);
    this.keyList = registryKeys(keys);
  }

  async heartbeat(args: {
    instanceId: string;
    leaseMs: number;
    capacity: number;
    address: string;
    info: Record<string, unknown>;
    /** The membership this agent mirrors (epoch and version of the last reply); none: the whole of it. */
    known?: { epoch: string; version: number } | undefined;
  }): Promise<HeartbeatResult> {
    const reply = await this.redis.sfHeartbeat(
      ...this.keyList,
      args.instanceId,
      args.leaseMs,
      args.capacity,
      args.address,
      JSON.stringify(args.info),
      args.known?.epoch ?? '',
      args.known?.version ?? 0,
    );
    return decodeHeartbeat(reply);
  }

  /** Ends this instance's lease now; returns false if it was not registered. */
  async leave(instanceId: string): Promise<boolean> {
    return decodeLeave(await this.redis.sfLeave(...this.keyList, instanceId));
  }

  async place(args: {
    self: string;
    principal: string | undefined;
    tenant: string | undefined;
    principalLimit: number | undefined;
    tenantLimit: number | undefined;
    maxInstances: number;
    reservationId: string;
    reservationTtlMs: number;
    selfMode: SelfMode;
    waiterId?: string;
    waitMs?: number;
    /** The id the client chose (header affinity): refused if it ended within the last lifetime. */
    sessionId?: string | undefined;
  }): Promise<PlaceResult> {
    const reply = await this.redis.sfPlace(
      ...this.keyList,
      args.self,
      args.principal ?? '',
      args.tenant ?? '',
      args.principalLimit ?? 0,
      args.tenantLimit ?? 0,
      args.maxInstances,
      args.reservationId,
      args.reservationTtlMs,
      args.selfMode,
      args.waiterId ?? '',
      Math.max(0, Math.ceil(args.waitMs ?? 0)),
      args.sessionId ?? '',
    );
    return decodePlace(reply);
  }

  /** Returns true if the reservation was still there. */
  async cancel(reservationId: string): Promise<boolean> {
    return decodeCancel(await this.redis.sfCancel(...this.keyList, reservationId));
  }

  async open(args: {
    id: string;
    owner: string;
    reservationId: string | undefined;
    principal: string | undefined;
    tenant: string | undefined;
    createdAt: number;
    expiresAt: number;
    resumable: boolean;
    /** Where the session lives upstream (the MCP endpoint path), for a reconcile after a restart. */
    upstreamPath?: string | undefined;
  }): Promise<OpenResult> {
    const reply = await this.redis.sfOpen(
      ...this.keyList,
      args.id,
      args.owner,
      args.reservationId ?? '',
      args.principal ?? '',
      args.tenant ?? '',
      Math.floor(args.createdAt),
      Math.floor(args.expiresAt),
      args.resumable ? 1 : 0,
      args.upstreamPath ?? '',
    );
    return decodeOpen(reply);
  }

  /**
   * `reason`: why it ended, remembered with its id for one lifetime when it is removed (not when
   * handed off); none (Copilot detach: resumable by design) remembers nothing.
   */
  async end(
    id: string,
    options: { expectedOwner?: string; mode: 'delete' | 'handoff'; reason?: EndedReason | undefined },
  ): Promise<EndResult> {
    const reply = await this.redis.sfEnd(
      ...this.keyList,
      id,
      options.expectedOwner ?? '',
      options.mode,
      options.reason ?? '',
      this.memory.ttlMs,
      this.memory.cap,
    );
    return decodeEnd(reply);
  }

  async resolve(
    id: string,
    args: { self: string; selfMode: SelfMode; idleMs: number; maxInstances: number },
  ): Promise<ResolveResult> {
    const reply = await this.redis.sfResolve(
      ...this.keyList,
      id,
      args.self,
      args.selfMode,
      args.idleMs,
      args.maxInstances,
      this.memory.ttlMs,
      this.memory.cap,
    );
    return decodeResolve(id, reply);
  }

  async resync(self: string, held: readonly LocalSessionState[]): Promise<ResyncResult> {
    const args: Array<string | number> = [self, this.memory.ttlMs, this.memory.cap];
    for (const s of held) {
      args.push(
        s.id,
        s.principal ?? '',
        s.tenant ?? '',
        Math.floor(s.createdAt),
        Math.floor(s.expiresAt),
        s.resumable ? 1 : 0,
        Math.floor(s.lastActiveAt),
      );
    }
    return decodeResync(await this.redis.sfResync(...this.keyList, ...args));
  }

  async sweep(args: { idleMs: number; graceMs: number; budget: number }): Promise<SweepResult> {
    const reply = await this.redis.sfSweep(
      ...this.keyList,
      args.idleMs,
      args.graceMs,
      args.budget,
      this.memory.ttlMs,
      this.memory.cap,
    );
    return decodeSweep(reply);
  }

  /**
   * Makes the scale list's length the fleet's session demand (see `SCALE_GAUGE`); the list expires
   * after `expiryMs` unless refreshed, so a fleet with no leader does not pin the autoscaler.
   */
  async syncScaleGauge(expiryMs: number): Promise<{ demand: number; previous: number }> {
    const k = this.keys;
    return decodeScaleGauge(
      await this.redis.sfScaleGauge(k.sessions, k.reservations, k.demand, k.scaleDemand, Math.ceil(expiryMs)),
    );
  }

  /**
   * Writes last-activity times back in one command. `XX` never resurrects a session that ended
   * meanwhile; `GT` never moves a time backwards.
   */
  async touch(entries: ReadonlyArray<readonly [string, number]>): Promise<void> {
    if (entries.length === 0) return;
    const args: Array<string | number> = [];
    for (const [id, at] of entries) args.push(Math.floor(at), id);
    await this.redis.zadd(this.keys.activity, 'XX', 'GT', ...args);
  }

  async removeWaiter(waiterId: string): Promise<void> {
    await this.redis.zrem(this.keys.demand, waiterId);
  }

  /** Why `id` ended, if the fleet remembers it ending within the last lifetime (a plain read). */
  async endedReason(id: string): Promise<EndedReason | undefined> {
    const [forgetAt, reason] = await Promise.all([
      this.redis.zscore(this.keys.ended, id),
      this.redis.hget(this.keys.endedReasons, id),
    ]);
    if (forgetAt === null) return undefined;
    const [seconds, micros] = await this.redis.time();
    return Number(forgetAt) > Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
      ? endedReason(reason)
      : undefined;
  }

  /** How many ended ids the fleet remembers now (bounded by the cap). */
  async endedCount(): Promise<number> {
    return this.redis.zcard(this.keys.ended);
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    const raw = await this.redis.hget(this.keys.sessions, id);
    return raw === null ? undefined : decodeRecord(id, raw);
  }

  /** The ids among `ids` that the registry knows. */
  async known(ids: readonly string[]): Promise<Set<string>> {
    const found = new Set<string>();
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      const raws = await this.redis.hmget(this.keys.sessions, ...chunk);
      raws.forEach((raw, j) => {
        if (raw !== null) found.add(chunk[j]!);
      });
    }
    return found;
  }

  async lastActive(ids: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (ids.length === 0) return out;
    const scores = await this.redis.zmscore(this.keys.activity, ...ids);
    scores.forEach((score, i) => {
      if (score !== null) out.set(ids[i]!, Number(score));
    });
    return out;
  }

  /** Ids in one owner's slice of a lexicographic index (reservations left out). */
  async idsOf(index: 'instance' | 'tenant', owner: string, limit: number): Promise<string[]> {
    const key = index === 'instance' ? this.keys.byInstance : this.keys.byTenant;
    const members = await this.redis.zrangebylex(key, `[${owner}\n`, `(${owner}\v`, 'LIMIT', 0, limit);
    return members.map((m) => m.slice(owner.length + 1)).filter((id) => !id.startsWith(' '));
  }

  /**
   * Ids of a principal's sessions: in `tenant` (null: without a tenant), or in every tenant when
   * `tenant` is undefined. The index names a principal `<principal>\t<tenant>`, or `<principal>`
   * alone without a tenant (`scripts.ts`); `\t` sorts before `\n`, so the range from
   * `<principal>\t` to `<principal>\v` holds that name in every tenant and nothing else.
   */
  async idsOfPrincipal(principal: string, tenant: string | null | undefined, limit: number): Promise<string[]> {
    const [min, max] =
      tenant === undefined
        ? [`[${principal}\t`, `(${principal}\v`]
        : tenant === null
          ? [`[${principal}\n`, `(${principal}\v`]
          : [`[${principal}\t${tenant}\n`, `(${principal}\t${tenant}\v`];
    const members = await this.redis.zrangebylex(this.keys.byPrincipal, min, max, 'LIMIT', 0, limit);
    return members.map((m) => m.slice(m.indexOf('\n') + 1)).filter((id) => !id.startsWith(' '));
  }

  /** Every session, by HSCAN, up to `limit`. */
  async all(limit: number): Promise<{ records: SessionRecord[]; truncated: boolean }> {
    const records: SessionRecord[] = [];
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(this.keys.sessions, cursor, 'COUNT', 500);
      cursor = next;
      for (let i = 0; i + 1 < flat.length; i += 2) {
        if (records.length >= limit) return { records, truncated: true };
        records.push(decodeRecord(flat[i]!, flat[i + 1]!));
      }
    } while (cursor !== '0');
    return { records, truncated: false };
  }

  async records(ids: readonly string[]): Promise<SessionRecord[]> {
    if (ids.length === 0) return [];
    const raws = await this.redis.hmget(this.keys.sessions, ...ids);
    const out: SessionRecord[] = [];
    raws.forEach((raw, i) => {
      if (raw !== null) out.push(decodeRecord(ids[i]!, raw));
    });
    return out;
  }

  /** Every registered instance, alive or not, by the Redis clock. */
  async instances(): Promise<InstanceInfo[]> {
    const [time, leases, capacity, address, info] = await Promise.all([
      this.redis.time(),
      this.redis.zrange(this.keys.leases, 0, -1, 'WITHSCORES'),
      this.redis.hgetall(this.keys.capacity),
      this.redis.hgetall(this.keys.address),
      this.redis.hgetall(this.keys.info),
    ]);
    const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    const out: InstanceInfo[] = [];
    for (let i = 0; i + 1 < leases.length; i += 2) {
      const id = leases[i]!;
      const deadline = Number(leases[i + 1]);
      const used = await this.redis.zlexcount(this.keys.byInstance, `[${id}\n`, `(${id}\v`);
      let parsed: Record<string, unknown> = {};
      try {
        parsed = JSON.parse(info[id] ?? '{}') as Record<string, unknown>;
      } catch {
        // An unreadable info blob only loses detail in the admin view.
      }
      out.push({
        id,
        address: address[id] ?? '',
        capacity: Number(capacity[id] ?? 0),
        used,
        leaseDeadline: deadline,
        alive: deadline > now,
        info: parsed,
      });
    }
    return out;
  }
}
