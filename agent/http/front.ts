/**
 * The agent's HTTP front (SPEC.md §2–4): every client request on `--listen` is tied to its
 * session, routed by the routing core (`agent/routing/`), admitted against the quotas, and
 * proxied to `--upstream` (or to the agent that holds its session) with its body and response
 * streamed both ways.
 *
 * The client port is a bare `node:http` server feeding undici's pool, not a Fastify app (Fastify
 * keeps the admin port). A proxy has one route — "everything" — so Fastify's router, hooks and
 * reply object bought nothing here but cost a third of the throughput when measured
 * (README, "HTTP front"). The jobs live one per file: this one the server's lifecycle; the
 * request path (`requests.ts`), the upgrade path (`upgrades.ts`), what both do on arrival and
 * admission here (`intake.ts`, `admission.ts`, `affinity.ts`), the upstream exchange
 * (`exchange.ts`, `websocket.ts`). No fleet rule is written here: this front only carries out the
 * routing core's decisions over HTTP.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Histogram } from 'prom-client';
import type { Pool } from 'undici';
import type {
  AgentContext,
  EarlierSession,
  Front,
  ListenAddress,
  StreamFilter,
  StreamInfo,
  TaskCancelOutcome,
  UpstreamSessionVerdict,
} from '../core/context.js';
import { AgentError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { Refusals } from '../core/refusals.js';
import type { EndReason, Session, SessionTable } from '../core/sessions.js';
import type { Tracing } from '../core/tracing.js';
import { BudgetSharing, type Budgets, isPrincipalPin, Router } from '../routing/index.js';
import { Admission, type Reservation } from './admission.js';
import { BodyWatch } from './body-gate.js';
import type { Exchange, Outcome } from './exchange.js';
import { PeerPools } from './fleet.js';
import { Intake } from './intake.js';
import { cancelHeldTask, closeHeldStreams, listHeldStreams } from './kill-switch.js';
import { installLimits, serverOptions } from './limits.js';
import { McpMetricLabels } from './mcp-metrics.js';
import { type HttpFrontOptions, type HttpFrontSettings, normalizeHttpFrontOptions } from './options.js';
import { RequestPath, type RequestPathHost } from './requests.js';
import { OpenStreams } from './streams.js';
import { UpgradePath, type UpgradePathHost } from './upgrades.js';
import { cancelUpstreamTask, createUpstreamPool, deleteUpstreamSession, pingUpstreamSession } from './upstream.js';
import type { WebSocketTunnel } from './websocket.js';

/** Session ends after which the MCP server still holds the session's state: the agent deletes it there. */
const DELETE_UPSTREAM_AFTER: ReadonlySet<EndReason> = new Set([
  'expired-lifetime',
  'expired-idle',
  'evicted',
  'terminated',
]);

/** Where a reconcile asks about a session whose MCP path the registry did not record. */
const DEFAULT_MCP_PATH = '/mcp';

/** How often streams no session holds are checked against the lifetime and idle bounds. */
const STREAM_SWEEP_MS = 1000;

/** Counts for tests and diagnostics: everything here returns to 0 when the agent is idle. */
export interface HttpFrontStats {
  activeRequests: number;
  openStreams: number;
  /** Stream places taken (`limits.streamsPerInstance`): open streams plus requests admitted as streams. */
  streamPlaces: number;
  sessionsWithStreams: number;
  pendingReservations: number;
  tunnels: number;
  pendingUpstreamDeletes: number;
}

export class HttpFront implements Front, RequestPathHost, UpgradePathHost {
  readonly kind = 'http' as const;
  readonly settings: HttpFrontSettings;
  readonly pool: Pool;
  readonly streamPool: Pool;
  readonly sessions: SessionTable;
  readonly admission: Admission;
  readonly streams = new OpenStreams();
  readonly logger: Logger;
  /**
   * Every routing decision, with and without `--redis` (a `LocalCoordinator` without): requests
   * for sessions held here never make it ask the coordinator anything.
   */
  readonly router: Router;
  readonly intake: Intake;
  readonly collaborative: boolean;
  readonly refusals: Refusals;
  /** Deadlines of the request bodies being received (ADR 0023); none with `--http-body-gate-bytes 0`. */
  readonly bodyWatch: BodyWatch | undefined;
  /** The request in flight on each client socket (one at a time on HTTP/1.1). */
  private readonly inFlight = new WeakMap<Socket, Exchange>();
  readonly tracing: Tracing | undefined;
  private readonly server: Server;
  private readonly peers: PeerPools;
  private readonly tunnels = new Set<WebSocketTunnel>();
  private readonly pendingDeletes = new Map<string, Promise<void>>();
  private readonly durations: Record<Outcome, Histogram.Internal<'front' | 'outcome'>>;
  private readonly mcpLabels: McpMetricLabels;
  /** The MCP path each live task was created at (bounded; the kill switch cancels it there). */
  private readonly taskPaths = new Map<string, string>();
  private active = 0;
  private drainWaiters: Array<() => void> = [];
  private stateless = false;
  private draining = false;
  private closed = false;
  private readonly debug: boolean;
  private readonly streamSweep: NodeJS.Timeout;
  /** `policy.limits`: the routing layer's budgets, shared with the fleet as the Copilot front's are. */
  private readonly budgetSharing: BudgetSharing;

  constructor(
    private readonly context: AgentContext,
    options: HttpFrontOptions = {},
  ) {
    this.settings = normalizeHttpFrontOptions(context.policy, context.config, options);
    this.sessions = context.sessions;
    this.logger = context.logger;
    this.debug = context.logger.isLevelEnabled('debug');
    // The composition root (server.ts) creates it, Redis or in-process: the front has no say.
    const coordinator = context.coordinator;
    if (!coordinator) throw new Error('the HTTP front needs the agent context with its coordinator');
    this.router = new Router({
      coordinator,
      sessions: context.sessions,
      instanceId: context.config.instanceId,
      policy: context.policy,
      purpose: 'http-forward',
      draining: () => this.isDraining,
    });
    this.collaborative = context.policy.collaborative?.enabled === true;
    this.tracing = context.tracing;
    this.intake = new Intake(this, context);
    this.peers = new PeerPools(this.settings.upstreamConnectTimeoutMs);
    this.budgetSharing = new BudgetSharing(context.policy.limits, {
      front: 'http',
      metrics: context.metrics,
      logger: context.logger,
      fleet: coordinator.budgets,
    });
    this.admission = new Admission({
      sessions: context.sessions,
      load: context.load,
      draining: () => this.isDraining,
      idleTimeoutSeconds: context.policy.sessionIdleTimeoutSeconds,
      evictIdleAfterSeconds: context.policy.limits.evictIdleAfterSeconds,
      create: (id: string, reservation: Reservation, meta?: Record<string, unknown>) =>
        this.intake.openPlaced(id, reservation, meta),
      cancelled: (reservation: Reservation) => {
        if (reservation.fleet) this.router.cancel(reservation.fleet);
      },
      streamsPerInstance: context.policy.limits.streamsPerInstance,
      budgets: this.budgetSharing.budgets,
    });
    this.streamSweep = setInterval(() => this.sweepStreams(), STREAM_SWEEP_MS);
    this.streamSweep.unref();
    this.pool = createUpstreamPool(this.settings);
    this.streamPool = createUpstreamPool(this.settings);
    const histogram = context.metrics.requestDuration;
    this.durations = {
      ok: histogram.labels('http', 'ok'),
      rejected: histogram.labels('http', 'rejected'),
      'upstream-error': histogram.labels('http', 'upstream-error'),
      aborted: histogram.labels('http', 'aborted'),
    };
    this.refusals = new Refusals('http', context.metrics, context.logger);
    this.mcpLabels = new McpMetricLabels(context.policy.mcpMetricNameLimit);
    const limits = this.settings.limits;
    this.bodyWatch =
      limits.bodyGateBytes > 0
        ? new BodyWatch({ idleMs: limits.bodyIdleTimeoutMs, minBytesPerSecond: limits.bodyMinBytesPerSecond })
        : undefined;
    this.server = createServer({ noDelay: true, ...serverOptions(limits) }, new RequestPath(this).onRequest);
    this.server.keepAliveTimeout = this.settings.clientKeepAliveTimeoutMs;
    installLimits(this.server, limits, {
      refusals: this.refusals,
      jsonRpc: this.settings.jsonRpcErrors,
      expiredSessionStatus: this.settings.expiredSessionStatus,
      inFlight: (socket) => this.inFlight.get(socket),
    });
    this.server.on('upgrade', new UpgradePath(this).onUpgrade);
    context.onSessionEnd((session, reason) => this.onSessionEnd(session, reason));
    if (context.principals && !this.settings.principalHeader) {
      this.logger.warn(
        '--principals is read by the Copilot front; the HTTP front takes the principal from --principal-header or a bearer JWT (--jwt-issuer)',
      );
    }
  }

  get isDraining(): boolean {
    return this.draining || this.context.draining;
  }

  get statelessUpstream(): boolean {
    return this.stateless;
  }

  stats(): HttpFrontStats {
    return {
      activeRequests: this.active,
      openStreams: this.streams.size,
      streamPlaces: this.admission.streamCount,
      sessionsWithStreams: this.streams.sessionCount,
      pendingReservations: this.admission.pendingCount,
      tunnels: this.tunnels.size,
      pendingUpstreamDeletes: this.pendingDeletes.size,
    };
  }

  async listen(): Promise<ListenAddress> {
    const { host, port } = this.context.config.listen;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const address = this.server.address() as AddressInfo;
    return { host: address.address, port: address.port };
  }

  /**
   * The reconcile after a restart (ADR 0022). Streamable HTTP: the server is asked (`ping`). Legacy
   * SSE: a session lives as long as its stream, which closed with the earlier agent. Header and
   * cookie affinity, and a principal's pin: the session is the agent's own binding, which the
   * upstream never held, so it is held as long as the registry says.
   */
  async checkEarlierSession(session: EarlierSession, signal: AbortSignal): Promise<UpstreamSessionVerdict> {
    if (isPrincipalPin(session.id)) return 'held';
    const type = this.settings.affinity.type;
    if (type === 'mcp-sse') return 'gone';
    if (type !== 'mcp-streamable-http') return 'held';
    const path = session.path ?? DEFAULT_MCP_PATH;
    return pingUpstreamSession(this.pool, this.settings, { id: session.id, path }, signal);
  }

  async endEarlierSession(session: EarlierSession): Promise<void> {
    if (isPrincipalPin(session.id) || this.settings.affinity.type !== 'mcp-streamable-http') return;
    const path = session.path ?? DEFAULT_MCP_PATH;
    await deleteUpstreamSession(this.pool, this.settings, { id: session.id, path, protocolVersion: undefined });
  }

  async terminate(sessionId: string): Promise<boolean> {
    if (!this.sessions.end(sessionId, 'terminated')) return false;
    await this.pendingDeletes.get(sessionId);
    return true;
  }

  /**
   * The budgets per principal, tenant and tool (`policy.limits`); `taskStarted` / `taskEnded` are
   * the hook for the code that sees MCP tasks created and ended.
   */
  openStreams(): number {
    return this.admission.streamCount;
  }

  usage(): ReturnType<Budgets['use']> {
    return this.admission.budgets.use();
  }

  get budgets(): Budgets {
    return this.admission.budgets;
  }

  drain(): Promise<void> {
    this.draining = true;
    // Streams no session holds carry no work: they go first, so their clients listen again on an
    // instance that stays and the drain never waits on them.
    this.streams.closeSessionless();
    // Idle keep-alive connections go now, so their clients reconnect to an instance that stays.
    this.server.closeIdleConnections();
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.draining = true;
    clearInterval(this.streamSweep);
    this.budgetSharing.stop();
    this.bodyWatch?.close();
    this.streams.closeAll();
    for (const tunnel of [...this.tunnels]) tunnel.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.pool.destroy();
    await this.streamPool.destroy();
    await this.peers.close();
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }

  /** Bounds the streams no session holds by the session lifetime and idle timeout (SPEC.md §4). */
  private sweepStreams(): void {
    const { policy } = this.context;
    const closed = this.streams.sweepSessionless(
      Date.now(),
      policy.sessionLifetimeSeconds * 1000,
      policy.sessionIdleTimeoutSeconds * 1000,
    );
    if (closed > 0) this.logger.debug({ closed }, 'closed streams past their lifetime or idle time');
  }

  // RequestPathHost / UpgradePathHost

  requestStarted(): void {
    this.active++;
  }

  inFlightOn(socket: Socket, exchange: Exchange): void {
    this.inFlight.set(socket, exchange);
  }

  tunnelStarted(tunnel: WebSocketTunnel): void {
    this.tunnels.add(tunnel);
  }

  peer(advertise: string, stream = false): { pool: Pool; host: string } {
    return this.peers.get(advertise, stream);
  }

  internalError(exchange: Exchange | WebSocketTunnel, error: unknown): void {
    this.logger.error(
      { reqId: exchange.requestId, sessionId: exchange.ticket.session?.id, err: error },
      'the agent failed on a request',
    );
    exchange.reject(new AgentError('INTERNAL_ERROR', 'the agent failed on this request'));
  }

  requestSettled(): void {
    this.active--;
    if (this.active === 0 && this.drainWaiters.length > 0) {
      for (const resolve of this.drainWaiters.splice(0)) resolve();
    }
  }

  sessionCreated(session: Session, requestId: string): void {
    this.context.metrics.sessionsCreated.inc({ front: 'http' });
    this.logger.info({ reqId: requestId, sessionId: session.id, principal: session.principal }, 'session created');
  }

  upstreamIsStateless(): void {
    if (this.stateless) return;
    this.stateless = true;
    this.logger.info(
      'the upstream answered initialize without Mcp-Session-Id: it keeps no sessions, requests pass without affinity (quotas still apply)',
    );
  }

  rejected(error: AgentError, requestId: string, sessionId: string | undefined): void {
    this.context.metrics.rejections.inc({ code: error.code });
    if (this.debug) this.logger.debug({ reqId: requestId, sessionId, code: error.code }, error.message);
  }

  orphaned(id: string, path: string): void {
    void deleteUpstreamSession(this.pool, this.settings, { id, path, protocolVersion: undefined }).catch(() => {});
  }

  taskCreated(taskId: string, path: string): void {
    if (this.taskPaths.size >= 10_000) this.taskPaths.delete(this.taskPaths.keys().next().value!);
    this.taskPaths.set(taskId, path);
  }

  async cancelTasks(filter: {
    principal: string;
    tenant?: string;
  }): Promise<{ cancelled: string[]; failed: string[] }> {
    const owned = this.router.coordinator.affinityKeys
      .list()
      .filter(
        (k) =>
          k.kind === 'task' &&
          k.principal === filter.principal &&
          (filter.tenant === undefined || k.tenant === filter.tenant),
      );
    const cancelled: string[] = [];
    const failed: string[] = [];
    await Promise.all(
      owned.map(async ({ key }) => {
        const path = this.taskPaths.get(key) ?? '/mcp';
        const ok = await cancelUpstreamTask(this.pool, this.settings, { id: key, path }).catch(() => false);
        (ok ? cancelled : failed).push(key);
      }),
    );
    return { cancelled, failed };
  }

  /** The fleet-wide task kill switch, here at the instance that holds the task (ADR 0025). */
  cancelTask(taskId: string): Promise<TaskCancelOutcome> {
    const path = this.taskPaths.get(taskId) ?? '/mcp';
    return cancelHeldTask({ pool: this.pool, settings: this.settings, budgets: this.budgets }, { id: taskId, path });
  }

  listStreams(filter: StreamFilter): StreamInfo[] {
    return listHeldStreams(this.streams, this.context.config.instanceId, filter);
  }

  closeStreams(filter: StreamFilter & { id?: string }): StreamInfo[] {
    const closed = closeHeldStreams(this.streams, this.context.config.instanceId, filter);
    if (closed.length > 0) {
      this.logger.info(
        { streams: closed.map((s) => s.id), principal: filter.principal },
        'streams closed by an operator',
      );
    }
    return closed;
  }

  /** A request naming a task or handle went where the routing core said. */
  keyDecided(kind: 'task' | 'handle', decision: 'local' | 'forwarded' | 'unknown' | 'refused'): void {
    this.context.metrics.affinityKeyDecisions.inc({ kind, decision });
  }

  finished(exchange: Exchange, outcome: Outcome, seconds: number): void {
    this.durations[outcome].observe(seconds);
    const labels = this.mcpLabels.of(exchange.req.headers);
    if (labels) {
      const { metrics } = this.context;
      const read = exchange.results?.tap.types[0];
      const result = read ?? (outcome !== 'ok' || exchange.status >= 400 ? 'error' : 'none');
      metrics.mcpRequests.inc({ method: labels.method, name: labels.name, result });
      metrics.mcpRequestDuration.observe(labels, seconds);
    }
    if (this.debug) {
      const url = exchange.req.url ?? '';
      this.logger.debug(
        {
          reqId: exchange.requestId,
          sessionId: exchange.sessionId,
          method: exchange.req.method,
          path: url.split('?')[0],
          status: exchange.status,
          outcome,
          ms: Math.round(seconds * 1e4) / 10,
        },
        'request done',
      );
    }
  }

  tunnelFinished(tunnel: WebSocketTunnel, outcome: Outcome, seconds: number): void {
    this.tunnels.delete(tunnel);
    this.durations[outcome].observe(seconds);
    if (this.debug) {
      this.logger.debug(
        { reqId: tunnel.requestId, sessionId: tunnel.ticket.session?.id, outcome, ms: Math.round(seconds * 1000) },
        'websocket closed',
      );
    }
  }

  // Sessions ending for any reason

  private onSessionEnd(session: Session, reason: EndReason): void {
    this.streams.closeSession(session.id);
    // A principal's pin is the agent's own: the upstream never saw its id.
    if (isPrincipalPin(session.id)) return;
    if (this.settings.affinity.type !== 'mcp-streamable-http' || !DELETE_UPSTREAM_AFTER.has(reason) || this.closed) {
      return;
    }
    const path = typeof session.meta.mcpPath === 'string' ? session.meta.mcpPath : '/';
    const protocolVersion = typeof session.meta.protocolVersion === 'string' ? session.meta.protocolVersion : undefined;
    const deletion = deleteUpstreamSession(this.pool, this.settings, { id: session.id, path, protocolVersion }).then(
      (status) => this.logger.debug({ sessionId: session.id, status, reason }, 'session deleted upstream'),
      (error: unknown) =>
        this.logger.warn(
          { sessionId: session.id, reason, err: error instanceof Error ? error.message : String(error) },
          'could not delete the session upstream',
        ),
    );
    const tracked = deletion.finally(() => this.pendingDeletes.delete(session.id));
    this.pendingDeletes.set(session.id, tracked);
  }
}

export async function createHttpFront(context: AgentContext, options: HttpFrontOptions = {}): Promise<Front> {
  return new HttpFront(context, options);
}
