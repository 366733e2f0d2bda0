/**
 * The admin API's view of the fleet: the session inventory (filtered by principal, tenant, owner
 * or age), the instances with their leases, and the kill switch, which asks the owner's agent over
 * its Redis channel to end a session properly and falls back to ending the record when the owner
 * is gone or silent. Every answer needs Redis; without it the caller gets STORE_UNAVAILABLE.
 */
import { randomUUID } from 'node:crypto';
import { AgentError } from '../core/errors.js';
import type { FleetKeys } from './keys.js';
import type { ChannelHub } from './redis.js';
import type { SessionRecord } from './registry.js';
import type { FleetState } from './state.js';
import type {
  DrainHandler,
  DrainResult,
  FleetAdmin,
  FleetInstanceSummary,
  FleetSessionInfo,
  InstanceDrains,
  SessionFilter,
  TerminateHandler,
  TerminateResult,
} from './types.js';

type AdminMessage =
  | { op: 'terminate'; id: string; requestId: string; replyTo: string }
  | { op: 'terminate-result'; requestId: string; ok: boolean }
  | { op: 'drain'; requestId: string; replyTo: string }
  | { op: 'drain-result'; requestId: string; ok: boolean };

export class FleetInventory implements Omit<FleetAdmin, 'drains' | 'peers'>, InstanceDrains {
  readonly instanceId: string;
  private readonly replies = new Map<string, (ok: boolean) => void>();
  private terminator: TerminateHandler;
  private drainer: DrainHandler;
  private off: (() => void) | undefined;

  constructor(
    private readonly s: FleetState,
    private readonly keys: FleetKeys,
  ) {
    this.instanceId = s.instanceId;
    this.terminator = async (id) => s.context.sessions.end(id, 'terminated');
    this.drainer = async () => s.context.sessions.startDraining();
  }

  /** The server's drain of this instance (admin drain, here or from a peer). */
  onDrain(handler: DrainHandler): void {
    this.drainer = handler;
  }

  /** `admin drain`: this instance at once; a live peer over its channel, confirmed. */
  async drain(instanceId: string): Promise<DrainResult | undefined> {
    if (instanceId === this.instanceId) {
      await this.drainer();
      return { instanceId, via: 'local' };
    }
    this.requireRedis();
    const instances = await this.listInstances();
    if (!instances.some((i) => i.id === instanceId && i.alive)) return undefined;
    const requestId = randomUUID();
    const message: AdminMessage = { op: 'drain', requestId, replyTo: this.instanceId };
    const confirmed = await this.ask(instanceId, requestId, message);
    if (!confirmed) {
      throw new AgentError(
        'UPSTREAM_TIMEOUT',
        `instance ${JSON.stringify(instanceId)} did not confirm the drain in time`,
      );
    }
    return { instanceId, via: 'peer' };
  }

  /** The front's proper end of a session (used for kill-switch requests held here). */
  onTerminate(handler: TerminateHandler): void {
    this.terminator = handler;
  }

  /** Answers kill-switch requests sent to this instance's channel. */
  async listen(hub: ChannelHub): Promise<void> {
    this.off = (await hub.listen(this.keys.instanceChannel(this.instanceId), (m) => void this.onMessage(m))).off;
  }

  close(): void {
    this.off?.();
  }

  private requireRedis(): void {
    if (this.s.redis.status !== 'ready') throw this.s.unavailableError();
  }

  private describe(
    record: SessionRecord,
    lastActive: number | undefined,
    alive: (id: string) => boolean,
  ): FleetSessionInfo {
    const s = this.s;
    const now = s.redisNow();
    const local = record.owner === s.instanceId ? s.context.sessions.get(record.id) : undefined;
    const last = local ? Math.max(local.lastActiveAt, lastActive ?? 0) : lastActive;
    const info: FleetSessionInfo = {
      id: record.id,
      owner: record.owner ?? null,
      ownerAlive: record.owner !== undefined && alive(record.owner),
      principal: record.principal ?? null,
      tenant: record.tenant ?? null,
      createdAt: new Date(record.createdAt).toISOString(),
      expiresAt: new Date(record.expiresAt).toISOString(),
      lastActiveAt: last !== undefined ? new Date(last).toISOString() : null,
      ageSeconds: Math.max(0, Math.floor((now - record.createdAt) / 1000)),
      idleSeconds: last !== undefined ? Math.max(0, Math.floor((now - last) / 1000)) : null,
      resumable: record.resumable,
    };
    if (local) {
      info.inFlight = local.inFlight;
      info.openStreams = local.openStreams;
    }
    return info;
  }

  private async aliveCheck(): Promise<(id: string) => boolean> {
    const instances = await this.s.registry.instances();
    const alive = new Set(instances.filter((i) => i.alive).map((i) => i.id));
    return (id) => alive.has(id);
  }

  async listSessions(filter: SessionFilter = {}): Promise<{ sessions: FleetSessionInfo[]; truncated: boolean }> {
    this.requireRedis();
    const registry = this.s.registry;
    const limit = filter.limit ?? 1000;
    let records: SessionRecord[];
    let truncated = false;
    if (filter.instanceId !== undefined) {
      const ids = await registry.idsOf('instance', filter.instanceId, limit + 1);
      truncated = ids.length > limit;
      records = await registry.records(ids.slice(0, limit));
    } else if (filter.principal !== undefined || filter.tenant !== undefined) {
      const ids =
        filter.principal !== undefined
          ? await registry.idsOfPrincipal(filter.principal, filter.tenant, limit + 1)
          : await registry.idsOf('tenant', filter.tenant!, limit + 1);
      truncated = ids.length > limit;
      records = await registry.records(ids.slice(0, limit));
    } else {
      ({ records, truncated } = await registry.all(limit));
    }
    const now = this.s.redisNow();
    records = records.filter((r) => {
      if (filter.principal !== undefined && r.principal !== filter.principal) return false;
      if (filter.tenant !== undefined && r.tenant !== filter.tenant) return false;
      if (filter.instanceId !== undefined && r.owner !== filter.instanceId) return false;
      // Whole seconds, as shown in `ageSeconds`.
      const age = Math.floor((now - r.createdAt) / 1000);
      if (filter.minAgeSeconds !== undefined && age < filter.minAgeSeconds) return false;
      if (filter.maxAgeSeconds !== undefined && age > filter.maxAgeSeconds) return false;
      return true;
    });
    const [lastActive, alive] = await Promise.all([registry.lastActive(records.map((r) => r.id)), this.aliveCheck()]);
    const sessions = records
      .map((r) => this.describe(r, lastActive.get(r.id), alive))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    return { sessions, truncated };
  }

  async inspect(sessionId: string): Promise<FleetSessionInfo | undefined> {
    this.requireRedis();
    const record = await this.s.registry.get(sessionId);
    if (!record) return undefined;
    const [lastActive, alive] = await Promise.all([this.s.registry.lastActive([sessionId]), this.aliveCheck()]);
    return this.describe(record, lastActive.get(sessionId), alive);
  }

  async listInstances(): Promise<FleetInstanceSummary[]> {
    this.requireRedis();
    const now = this.s.redisNow();
    return (await this.s.registry.instances()).map((i) => ({
      id: i.id,
      advertise: i.address,
      alive: i.alive,
      self: i.id === this.instanceId,
      capacity: i.capacity,
      used: i.used,
      free: Math.max(0, i.capacity - i.used),
      draining: i.info.draining === true,
      inFlight: typeof i.info.inFlight === 'number' ? i.info.inFlight : null,
      leaseExpiresInMs: i.leaseDeadline - now,
    }));
  }

  /**
   * The kill switch. Held here: the front ends it properly. Held by a live instance: that
   * instance's agent is asked over its channel and ends it properly. Owner gone or silent: the
   * record is ended in the registry (a silent owner drops its copy at its next resync).
   */
  async terminate(sessionId: string): Promise<TerminateResult> {
    if (this.s.context.sessions.get(sessionId)) {
      const ok = await this.terminator(sessionId);
      return { terminated: ok, via: 'local', owner: this.instanceId };
    }
    this.requireRedis();
    const record = await this.s.registry.get(sessionId);
    if (!record) return { terminated: false, via: 'none', owner: null };
    const owner = record.owner ?? null;
    if (owner !== null && owner !== this.instanceId) {
      const confirmed = await this.askOwner(owner, sessionId);
      if (confirmed) return { terminated: true, via: 'owner', owner };
    }
    const ended = await this.s.registry.end(sessionId, { mode: 'delete', reason: 'terminated' });
    return { terminated: ended.kind === 'ended', via: 'registry', owner };
  }

  /** True if the owner ended it; false if it answered that it does not hold it, or nobody answered. */
  private askOwner(owner: string, sessionId: string): Promise<boolean> {
    const requestId = randomUUID();
    const message: AdminMessage = { op: 'terminate', id: sessionId, requestId, replyTo: this.instanceId };
    return this.ask(owner, requestId, message);
  }

  /** Publishes a request on `instance`'s channel; true once it answers ok, false on a no or silence. */
  private async ask(instance: string, requestId: string, message: AdminMessage): Promise<boolean> {
    const answer = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.replies.delete(requestId);
        resolve(false);
      }, this.s.o.terminateTimeoutMs);
      this.replies.set(requestId, (ok) => {
        clearTimeout(timer);
        this.replies.delete(requestId);
        resolve(ok);
      });
    });
    const receivers = await this.s.redis.publish(this.keys.instanceChannel(instance), JSON.stringify(message));
    if (receivers === 0) {
      this.replies.get(requestId)?.(false);
      return false;
    }
    return answer;
  }

  private async onMessage(text: string): Promise<void> {
    let message: AdminMessage;
    try {
      message = JSON.parse(text) as AdminMessage;
    } catch {
      return;
    }
    if (message.op === 'terminate-result' || message.op === 'drain-result') {
      this.replies.get(message.requestId)?.(message.ok === true);
      return;
    }
    if (message.op === 'drain') {
      let drained = false;
      try {
        await this.drainer();
        drained = true;
      } catch (error) {
        this.s.context.logger.error({ err: error }, 'drain failed');
      }
      const reply: AdminMessage = { op: 'drain-result', requestId: message.requestId, ok: drained };
      await this.s.redis.publish(this.keys.instanceChannel(message.replyTo), JSON.stringify(reply)).catch(() => {});
      return;
    }
    let ok = false;
    if (this.s.context.sessions.get(message.id)) {
      try {
        ok = await this.terminator(message.id);
      } catch (error) {
        this.s.context.logger.error({ err: error, sessionId: message.id }, 'terminate failed');
      }
    }
    const reply: AdminMessage = { op: 'terminate-result', requestId: message.requestId, ok };
    await this.s.redis.publish(this.keys.instanceChannel(message.replyTo), JSON.stringify(reply)).catch(() => {});
  }
}
