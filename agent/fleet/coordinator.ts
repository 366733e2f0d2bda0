/**
 * `FleetCoordinator`: the agent's side of the fleet (`--redis`), the `Coordinator` the fronts
 * use. It wires together the parts, each with one job:
 * - `InstanceLease` (instance-lease.ts): registration, the lease renewed by heartbeat, resync, and
 *   the write-back of activity and session ends;
 * - `FleetPlacement` (placement.ts): where new sessions go, and registering them;
 * - `SessionLocator` (locator.ts): where a named session lives, and adopting orphaned sessions;
 * - `FleetJanitor` (janitor.ts): the leader's registry sweep and session-state cleanup;
 * - `FleetInventory` (inventory.ts): the admin API's inventory and kill switch;
 * - `Reconciler` (reconcile.ts): at the first registration, the sessions of this instance's
 *   earlier life (an agent restarted under the same id) adopted again or ended;
 * - `FleetRegistry` (registry.ts): typed calls to the Lua scripts, which hold the rules.
 * They share one `FleetState` (state.ts).
 *
 * The request path for a session held here issues no Redis command: `route()` answers from the
 * local session table, and activity is written back in one batched command per flush interval.
 *
 * When Redis is unreachable (see docs/fleet.md, "Redis outages"): sessions held here go on as
 * before; requests for sessions held elsewhere are routed by the cached owner or the id's signed
 * owner hint; new sessions get STORE_UNAVAILABLE (503, Retry-After) — or, with `policy.failOpen`,
 * are placed here. ioredis reconnects by itself; on reconnect the instance registers again and
 * re-registers what it holds (a restarted Redis comes back empty).
 */
import type { Redis } from 'ioredis';
import type { Session } from '../core/sessions.js';
import { RedisAffinityKeys } from './affinity-keys.js';
import { BudgetSync } from './budget-sync.js';
import { InstanceLease } from './instance-lease.js';
import { FleetInventory } from './inventory.js';
import { FleetJanitor } from './janitor.js';
import { type FleetKeys, fleetKeys } from './keys.js';
import { SessionLocator } from './locator.js';
import { FenceGate, RedisLock } from './lock.js';
import { createFleetMetrics, type FleetMetrics } from './metrics.js';
import {
  type FleetCoordinatorOptions,
  type FleetScheduler,
  type FleetTask,
  intervalScheduler,
  redisConnect,
  resolveFleetOptions,
} from './options.js';
import type { OwnerHints } from './owner-hint.js';
import { RedisPeerCalls } from './peer-calls.js';
import { FleetPlacement } from './placement.js';
import { ReconcileOnRestart } from './reconcile.js';
import { ChannelHub, connectWithin, isReplicated } from './redis.js';
import { FleetRegistry } from './registry.js';
import { FleetState } from './state.js';
import type { StateCleanupReport } from './state-cleanup.js';
import type {
  Coordinator,
  FleetContext,
  FleetInstanceSummary,
  FleetSessionInfo,
  HopRoute,
  InstanceDrains,
  NewSession,
  OpenOptions,
  Placement,
  PlacementTicket,
  RestartReconcile,
  Route,
  SessionFilter,
  TerminateHandler,
  TerminateResult,
} from './types.js';

export type { FleetConnect, FleetCoordinatorOptions, FleetScheduler, FleetTask } from './options.js';
export { OwnershipConflictError } from './placement.js';

export class FleetCoordinator implements Coordinator {
  readonly mode = 'redis' as const;
  readonly instanceId: string;
  readonly keys: FleetKeys;
  readonly registry: FleetRegistry;
  readonly lock: RedisLock;
  readonly fence = new FenceGate();
  readonly redis: Redis;
  /** The fleet-wide budget counts (`policy.limits`). */
  readonly budgets: BudgetSync;
  readonly metrics: FleetMetrics;
  readonly affinityKeys: RedisAffinityKeys;
  /** The task and stream kill switches' calls to the agent that holds them (ADR 0025). */
  readonly peers: RedisPeerCalls;

  private readonly subscriber: Redis;
  private readonly hub: ChannelHub;
  private readonly scheduler: FleetScheduler;
  private readonly state: FleetState;
  private readonly lease: InstanceLease;
  private readonly placement: FleetPlacement;
  private readonly locator: SessionLocator;
  private readonly janitor: FleetJanitor;
  private readonly inventory: FleetInventory;
  readonly drains: InstanceDrains;
  /** The reconcile after a restart (ADR 0022); the server hands it the front's upstream check. */
  readonly reconcile: RestartReconcile;
  private cancelTimers: Array<() => void> = [];

  constructor(
    private readonly context: FleetContext,
    options: FleetCoordinatorOptions = {},
  ) {
    const endpoint = options.redis ?? context.config.redis;
    if (!endpoint && !options.connect) throw new Error('FleetCoordinator needs a Redis URL (--redis)');
    this.instanceId = context.config.instanceId;
    const o = resolveFleetOptions(context, options);
    this.keys = fleetKeys({ fleet: options.fleet, prefix: options.prefix });
    const connect = options.connect ?? redisConnect(endpoint!, o.commandTimeoutMs);
    const name = `sessionfleet:${this.instanceId}`;
    this.redis = connect('commands', name);
    this.subscriber = connect('subscriber', `${name}:sub`);
    this.hub = new ChannelHub(this.subscriber);
    this.scheduler = options.scheduler ?? intervalScheduler;
    this.registry = new FleetRegistry(this.redis, this.keys);
    this.budgets = new BudgetSync(this.redis, this.keys, this.instanceId);
    this.affinityKeys = new RedisAffinityKeys(this.redis, this.keys, this.instanceId);
    // An ended id is remembered as long as a single agent remembers it: one session lifetime.
    this.registry.memory = {
      ttlMs: context.policy.sessionLifetimeSeconds * 1000,
      cap: Math.max(0, Math.floor(o.endedIdsCap)),
    };
    const collaborative = context.policy.collaborative;
    this.lock = new RedisLock({
      redis: this.redis,
      keys: this.keys,
      hub: this.hub,
      ttlMs: (collaborative?.lockTtlSeconds ?? 30) * 1000,
      waitMs: (collaborative?.lockWaitSeconds ?? 10) * 1000,
      waiterTtlMs: o.lockWaiterTtlMs,
      // Behind Sentinel a failover promotes a replica: a grant counts once one replica has it.
      replicasToAck: endpoint && isReplicated(endpoint) ? 1 : 0,
    });
    this.metrics = createFleetMetrics(context.metrics.registry);
    this.state = new FleetState(context, o, this.redis, this.registry, this.metrics);
    this.lease = new InstanceLease(this.state, this.keys, options.hintKeys, (id) => this.locator.isAdopting(id));
    this.locator = new SessionLocator(this.state, this.lease);
    this.placement = new FleetPlacement(this.state, this.lease);
    this.janitor = new FleetJanitor(this.state, this.lock, options.stateCleanup);
    this.inventory = new FleetInventory(this.state, this.keys);
    this.drains = this.inventory;
    this.peers = new RedisPeerCalls({
      redis: this.redis,
      keys: this.keys,
      instanceId: this.instanceId,
      liveInstances: async () => (await this.registry.instances()).filter((i) => i.alive).map((i) => i.id),
      unavailable: () => this.state.unavailableError(),
      timeoutMs: o.terminateTimeoutMs,
    });
    this.reconcile = new ReconcileOnRestart(this.state, this.keys, this.lease);
    // Until the server says how it drains: as its own drain begins (no new sessions).
    this.inventory.onDrain(() => this.startDraining());

    context.onSessionEnd((session, reason) => {
      this.fence.forget(session.id);
      this.lease.sessionEnded(session, reason);
    });
    // The app not answering: this instance offers no slot (FleetState.upstreamDown); peers learn
    // it from a heartbeat sent now rather than at the next tick.
    context.upstreamHealth?.onChange((up) => {
      context.logger.info(
        { upstreamUp: up },
        up ? 'upstream answers: offering slots to the fleet again' : 'upstream down: new sessions go to peers',
      );
      this.lease.heartbeat().catch(() => {});
    });
    this.redis.on('ready', () => void this.lease.connected());
    this.redis.on('close', () => this.lease.disconnected());
  }

  get available(): boolean {
    return this.state.available;
  }

  get hints(): OwnerHints | undefined {
    return this.lease.hints;
  }

  /** The last state-cleanup report, for tests and the admin view. */
  get lastCleanup(): StateCleanupReport | undefined {
    return this.janitor.lastCleanup;
  }

  // ---- life cycle -------------------------------------------------------------------------

  async start(): Promise<void> {
    const o = this.state.o;
    const [up] = await Promise.all([
      connectWithin(this.redis, o.startTimeoutMs),
      connectWithin(this.subscriber, o.startTimeoutMs),
    ]);
    if (up) await this.lease.connected();
    else
      this.context.logger.warn(
        { failOpen: this.context.policy.failOpen },
        'fleet store (Redis) unreachable at start; serving local sessions and retrying in the background',
      );
    await this.inventory.listen(this.hub);
    await this.peers.listen(this.hub);
    const every = (task: FleetTask, ms: number, run: () => Promise<void>) => {
      const cancel = this.scheduler.every(task, ms, () => {
        run().catch((error: unknown) => this.context.logger.debug({ err: error, task }, 'fleet timer task failed'));
      });
      this.cancelTimers.push(cancel);
    };
    every('heartbeat', o.heartbeatMs, () => this.lease.heartbeat());
    every('activity-flush', o.activityFlushMs, () => this.lease.flush());
    every('janitor', o.sweepIntervalMs, () => this.janitor.run());
  }

  async stop(): Promise<void> {
    if (this.state.stopped) return;
    this.state.stopped = true;
    for (const cancel of this.cancelTimers) cancel();
    this.cancelTimers = [];
    this.inventory.close();
    this.peers.close();
    this.locator.finishAll();
    await this.lease.settle();
    if (this.redis.status === 'ready') await this.janitor.resign().catch(() => {});
    await this.lease.leave();
    this.state.registered = false;
    this.metrics.redisUp.set(0);
    this.redis.disconnect();
    this.subscriber.disconnect();
  }

  /** Heartbeat and activity flush now, instead of at the next tick (tests, and before shutdown). */
  async refresh(): Promise<void> {
    await this.lease.heartbeat();
    await this.lease.flush();
  }

  /**
   * Writes activity back now: one command for every session active since the last flush, none if
   * nothing happened (the activity-flush timer calls the same).
   */
  flush(): Promise<void> {
    return this.lease.flush();
  }

  async startDraining(): Promise<void> {
    this.state.draining = true;
    this.context.sessions.startDraining();
    await this.lease.heartbeat().catch(() => {});
    await this.lease.flush().catch(() => {});
  }

  mintSessionId(): string {
    return this.lease.mintSessionId();
  }

  // ---- placement and routing ----------------------------------------------------------------

  place(request?: NewSession, options?: { signal?: AbortSignal }): Promise<Placement> {
    return this.placement.place(request, options);
  }

  open(ticket: PlacementTicket, sessionId: string, options?: OpenOptions): Promise<Session> {
    return this.placement.open(ticket, sessionId, options);
  }

  cancel(ticket: PlacementTicket): Promise<void> {
    return this.placement.cancel(ticket);
  }

  route(sessionId: string): Promise<Route> {
    return this.locator.route(sessionId);
  }

  routeHop(sessionId: string): Promise<HopRoute> {
    return this.locator.routeHop(sessionId);
  }

  adopt(sessionId: string, options?: { meta?: Record<string, unknown> }): Promise<Session> {
    return this.locator.adopt(sessionId, options);
  }

  abandon(sessionId: string): Promise<void> {
    return this.locator.abandon(sessionId);
  }

  forget(sessionId: string): void {
    this.state.forget(sessionId);
  }

  // ---- housekeeping and admin ---------------------------------------------------------------

  /** One session-state cleanup run (the janitor calls it; exposed for tests and operators). */
  cleanStateNow(): Promise<StateCleanupReport | undefined> {
    return this.janitor.cleanStateNow();
  }

  /** Leads the janitor now if nobody does (tests use it to make a run deterministic). */
  sweepNow(): Promise<boolean> {
    return this.janitor.sweepNow();
  }

  onTerminate(handler: TerminateHandler): void {
    this.inventory.onTerminate(handler);
  }

  listSessions(filter?: SessionFilter): Promise<{ sessions: FleetSessionInfo[]; truncated: boolean }> {
    return this.inventory.listSessions(filter);
  }

  inspect(sessionId: string): Promise<FleetSessionInfo | undefined> {
    return this.inventory.inspect(sessionId);
  }

  listInstances(): Promise<FleetInstanceSummary[]> {
    return this.inventory.listInstances();
  }

  terminate(sessionId: string): Promise<TerminateResult> {
    return this.inventory.terminate(sessionId);
  }
}
