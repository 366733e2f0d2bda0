/**
 * Owns the agent's life: loads the policy and principals, builds the shared context, starts the
 * front that matches the affinity type, the admin port and the upstream probe, and drains on
 * SIGTERM/SIGINT (readiness false, no new sessions, in-flight work finishes within the policy's
 * drain timeout, then exit 0) — and on an uncaught exception or unhandled rejection, the same
 * drain, then exit 1 so that the platform restarts the agent.
 */
import { readFile } from 'node:fs/promises';
import closeWithGrace from 'close-with-grace';
import type { FastifyInstance } from 'fastify';
import { type Policy, validatePolicyText } from '../policy/index.js';
import { buildAdminApp } from './admin.js';
import { packageVersion } from './cli-usage.js';
import { checkConfigAgainstPolicy, formatHostPort, resolveAgentConfig } from './config.js';
import type { AgentConfig } from './core/config.js';
import type { AgentContext, Front, ListenAddress } from './core/context.js';
import { type JwtTunables, JwtVerifier } from './core/jwt.js';
import { InstanceLoad } from './core/load.js';
import { createLogger, type Logger } from './core/logger.js';
import { createMetrics } from './core/metrics.js';
import { Principals } from './core/principals.js';
import { httpCheck, type ProbeCheck, tcpCheck, UpstreamProbe } from './core/probe.js';
import { deleteOwnPod, inClusterPod } from './core/recycle.js';
import { type EndReason, type Session, SessionTable } from './core/sessions.js';
import { createTracing } from './core/tracing.js';
import { UpstreamHealth } from './core/upstream-health.js';
import { createCoordinator } from './fleet/create.js';

export class StartupError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'StartupError';
  }
}

export interface RunningAgent {
  readonly context: AgentContext;
  readonly front: Front;
  readonly probe: UpstreamProbe;
  readonly client: ListenAddress;
  readonly admin: ListenAddress;
  /** Drains (bounded by the policy's drain timeout) and closes everything. */
  shutdown(reason?: string): Promise<void>;
  /** Resolves once the agent has stopped, whoever asked it to (a signal, recycling). */
  readonly stopped: Promise<void>;
}

/** Reads and validates the policy file; every problem is reported, nothing is thrown raw. */
export async function loadPolicy(file: string): Promise<{ policy: Policy; warnings: string[] }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new StartupError([
      `--policy ${file}: cannot read the file (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
    ]);
  }
  const result = validatePolicyText(text);
  if (!result.ok) throw new StartupError(result.errors.map((e) => `--policy ${file}: ${e.message}`));
  return { policy: result.policy, warnings: result.warnings.map((w) => w.message) };
}

async function createFront(context: AgentContext): Promise<Front> {
  if (context.policy.affinity.type === 'copilot-jsonrpc') {
    const { createCopilotFront } = await import('./copilot/front.js');
    return createCopilotFront(context);
  }
  const { createHttpFront } = await import('./http/front.js');
  return createHttpFront(context);
}

/** `sessionsPerTenant` with nothing that names a tenant binds no session: said once at start. */
function unnamedTenantWarning(
  config: AgentConfig,
  policy: Policy,
  principals: Principals | undefined,
): string | undefined {
  if (policy.sessionsPerTenant === undefined || config.tenant !== undefined) return undefined;
  const copilot = policy.affinity.type === 'copilot-jsonrpc';
  if (copilot ? principals?.hasTenants : config.tenantHeader !== undefined) return undefined;
  return `the policy's sessionsPerTenant binds no session: nothing names a tenant (set --tenant, ${
    copilot ? 'or tenants in --principals' : 'or --tenant-header'
  })`;
}

function addressOf(app: FastifyInstance): ListenAddress {
  const address = app.server.address();
  if (typeof address === 'object' && address) return { host: address.address, port: address.port };
  throw new Error('admin server has no address');
}

/** Starts an agent in this process. Used by `runAgent` and by tests that need a handle. */
export async function startAgent(
  given: AgentConfig,
  options: { logger?: Logger; jwt?: JwtTunables } = {},
): Promise<RunningAgent> {
  let config: AgentConfig;
  try {
    config = await resolveAgentConfig(given);
  } catch (error) {
    throw new StartupError([`--listen (${formatHostPort(given.listen)}): ${listenFailure(error)}`]);
  }
  const { policy, warnings } = await loadPolicy(config.policyFile);
  const problems = checkConfigAgainstPolicy(config, policy);
  if (problems.length > 0) throw new StartupError(problems);

  const logger = options.logger ?? createLogger({ level: config.logLevel, instanceId: config.instanceId });
  for (const warning of warnings) logger.warn({ policyFile: config.policyFile }, warning);
  for (const warning of config.warnings ?? []) logger.warn(warning);
  let principals: Principals | undefined;
  try {
    principals = config.principalsFile ? await Principals.load(config.principalsFile) : undefined;
  } catch (error) {
    throw new StartupError([error instanceof Error ? error.message : String(error)]);
  }
  const tenantWarning = unnamedTenantWarning(config, policy, principals);
  if (tenantWarning) logger.warn(tenantWarning);
  const metrics = createMetrics({ instanceId: config.instanceId });

  const endListeners: Array<(session: Session, reason: EndReason) => void> = [];
  const sessions = new SessionTable({
    policy,
    onEnd: (session, reason) => {
      metrics.sessionsEnded.inc({ reason });
      logger.info({ sessionId: session.id, reason }, 'session ended');
      for (const listener of endListeners) {
        try {
          listener(session, reason);
        } catch (error) {
          logger.error({ err: error, sessionId: session.id }, 'session end listener failed');
        }
      }
    },
  });
  let draining = false;
  const upstreamHealth = new UpstreamHealth();
  const base = {
    config,
    policy,
    logger,
    metrics,
    sessions,
    load: new InstanceLoad(policy.concurrencyPerInstance),
    upstreamHealth,
    onSessionEnd: (listener: (session: Session, reason: EndReason) => void) => {
      endListeners.push(listener);
    },
  };
  // With --redis the agents of the fleet coordinate; without it the same contract runs locally.
  const coordinator = createCoordinator(base);
  const tracing = await createTracing({ env: process.env, instanceId: config.instanceId, version: packageVersion() });
  if (tracing) logger.info('traces are exported over OTLP/HTTP (OTEL_* environment)');
  const context: AgentContext = {
    ...base,
    principals,
    jwt: config.jwt ? new JwtVerifier(config.jwt, config, options.jwt) : undefined,
    coordinator,
    ...(tracing ? { tracing } : {}),
    get draining() {
      return draining;
    },
  };

  const front = await createFront(context);
  const upstreamHost = config.upstream.hostname.replace(/^\[|\]$/g, '');
  const fallbackCheck: ProbeCheck = config.healthPath
    ? httpCheck(new URL(config.healthPath, config.upstream.href.replace(/^tcp:/, 'http:')).href)
    : tcpCheck(upstreamHost, Number(config.upstream.port));
  const probe = new UpstreamProbe({
    check: front.probeCheck?.() ?? fallbackCheck,
    intervalMs: config.probeIntervalMs,
    unhealthyAfterMs: config.unhealthyAfterMs,
    onChange: (up, error) => {
      metrics.upstreamUp.set(up ? 1 : 0);
      // In a fleet, new sessions go to healthy peers while this instance's app does not answer.
      upstreamHealth.set(up);
      if (up) logger.info({ upstream: config.upstream.href }, 'upstream is up');
      else logger.warn({ upstream: config.upstream.href, err: error?.message }, 'upstream is not answering');
    },
  });

  // After a restart, the sessions the registry still gives this instance are asked about upstream
  // (adopted or ended) before the first resync would release them (ADR 0022).
  if (front.checkEarlierSession && coordinator.reconcile) {
    const check = front.checkEarlierSession.bind(front);
    const end = front.endEarlierSession?.bind(front) ?? (async () => {});
    coordinator.reconcile.askWith({ check, end });
  }
  // The kill switch (from any agent of the fleet) ends a session here the way the front ends it.
  coordinator.onTerminate((id) =>
    front.terminate ? front.terminate(id) : Promise.resolve(sessions.end(id, 'terminated')),
  );
  // The fleet-wide task and stream kill switches reach this front from any agent (ADR 0025).
  const named = (v: unknown) => (typeof v === 'string' && v.length > 0 ? v : undefined);
  const streamFilter = (args: { principal?: unknown; tenant?: unknown; id?: unknown }) => ({
    ...(named(args.principal) ? { principal: named(args.principal) } : {}),
    ...(named(args.tenant) ? { tenant: named(args.tenant) } : {}),
    ...(named(args.id) ? { id: named(args.id) } : {}),
  });
  coordinator.peers.handle('cancel-task', async ({ taskId }) => {
    const id = named(taskId);
    return id && front.cancelTask ? front.cancelTask(id) : { outcome: 'unknown' };
  });
  coordinator.peers.handle('list-streams', async (filter) => front.listStreams?.(streamFilter(filter)) ?? []);
  coordinator.peers.handle('close-streams', async (filter) => front.closeStreams?.(streamFilter(filter)) ?? []);
  // `admin drain`: no new sessions here from now on; the sessions go on until the instance stops.
  coordinator.drains.onDrain(async () => {
    if (draining) return;
    draining = true;
    metrics.draining.set(1);
    logger.warn(
      { sessions: sessions.size },
      'drained by an operator: no new sessions; stop the instance when its sessions are done',
    );
    await coordinator.startDraining();
  });
  const adminApp = buildAdminApp({ context, probe, front, fleet: coordinator });
  let client: ListenAddress;
  let admin: ListenAddress;
  let flag = '--listen';
  try {
    client = await front.listen();
    flag = '--admin-listen';
    await adminApp.listen({ host: config.adminListen.host, port: config.adminListen.port });
    admin = addressOf(adminApp);
  } catch (error) {
    sessions.close();
    await coordinator.stop().catch(() => {});
    await front.close().catch(() => {});
    await adminApp.close().catch(() => {});
    const where = formatHostPort(flag === '--listen' ? config.listen : config.adminListen);
    throw new StartupError([`${flag} (${where}): ${listenFailure(error)}`]);
  }
  // After listen: peers are told to come here only once something answers.
  await coordinator.start();
  await probe.checkNow();
  probe.start();
  logger.info(
    {
      client,
      admin,
      upstream: config.upstream.href,
      front: front.kind,
      isolation: policy.isolation,
      ...(config.tenant !== undefined ? { tenant: config.tenant } : {}),
      affinity: policy.affinity.type,
    },
    'agent listening',
  );

  let shuttingDown: Promise<void> | undefined;
  let markStopped: () => void = () => {};
  const stopped = new Promise<void>((resolve) => {
    markStopped = resolve;
  });
  const shutdown = (reason = 'shutdown') => {
    shuttingDown ??= (async () => {
      draining = true;
      sessions.startDraining();
      metrics.draining.set(1);
      // Offers no slot to the fleet from now on; idle resumable sessions are handed off.
      await coordinator
        .startDraining()
        .catch((error: unknown) => logger.warn({ err: error }, 'could not tell the fleet this instance is draining'));
      logger.info({ reason, inFlight: context.load.inFlight, sessions: sessions.size }, 'draining');
      const drainMs = policy.drainTimeoutSeconds * 1000;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        front.drain().then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), drainMs);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut)
        logger.warn(
          { inFlight: context.load.inFlight, drainTimeoutSeconds: policy.drainTimeoutSeconds },
          'drain timed out',
        );
      probe.stop();
      for (const session of sessions.list()) sessions.end(session.id, 'drained');
      sessions.close();
      // Writes the drained sessions' hand-offs and leaves the fleet at once.
      await coordinator.stop().catch((error: unknown) => logger.warn({ err: error }, 'fleet stop failed'));
      await front.close();
      await adminApp.close();
      await tracing?.shutdown().catch((error: unknown) => logger.warn({ err: error }, 'trace export failed'));
      logger.info('agent stopped');
    })().finally(markStopped);
    return shuttingDown;
  };

  if (policy.recycleAfterSession) {
    context.onSessionEnd((session, reason) => {
      if (reason === 'drained' || shuttingDown) return;
      logger.info({ sessionId: session.id, reason }, 'the instance served its session: recycling it');
      void recycle(shutdown, logger);
    });
  }

  return { context, front, probe, client, admin, shutdown, stopped };
}

/**
 * After the one session of a recycled instance: drain, then have the platform replace the
 * instance. In a pod the agent deletes the pod (Kubernetes then stops both containers and the
 * Deployment starts a fresh one); elsewhere it exits and the platform restarts the instance.
 */
async function recycle(shutdown: (reason?: string) => Promise<void>, logger: Logger): Promise<void> {
  await shutdown('recycle');
  const pod = await inClusterPod();
  if (!pod) return;
  try {
    const deleted = await deleteOwnPod(pod, AbortSignal.timeout(10_000));
    if (deleted) logger.info({ pod: pod.podName }, 'asked Kubernetes to delete this pod');
    else logger.error({ pod: pod.podName }, 'Kubernetes refused to delete this pod; exiting instead');
  } catch (error) {
    logger.error(
      { pod: pod.podName, err: error instanceof Error ? error.message : String(error) },
      'cannot delete this pod; exiting instead',
    );
  }
}

/** Time to close the listeners and leave the fleet once the drain is over or timed out. */
const CLOSE_AFTER_DRAIN_MS = 5_000;

/**
 * What else close-with-grace would react to: signals the agent never documented (a SIGHUP or a
 * SIGUSR2 keep their usual meaning), faults after which JavaScript cannot safely run, and the
 * event loop running empty (the agent then already stopped, after recycling).
 */
const NOT_A_SHUTDOWN: closeWithGrace.AllEvents[] = [
  'SIGHUP',
  'SIGQUIT',
  'SIGILL',
  'SIGTRAP',
  'SIGABRT',
  'SIGBUS',
  'SIGFPE',
  'SIGSEGV',
  'SIGUSR2',
  'beforeExit',
];

/**
 * The CLI's default command: runs until SIGTERM/SIGINT (drain, exit 0) or a crash (drain, exit 1),
 * or until the agent stops itself (recycling), then resolves with the exit code.
 */
export async function runAgent(config: AgentConfig): Promise<number> {
  let agent: RunningAgent;
  try {
    agent = await startAgent(config);
  } catch (error) {
    if (error instanceof StartupError) {
      process.stderr.write(`sessionfleet-agent: cannot start:\n${error.problems.map((p) => `  - ${p}`).join('\n')}\n`);
      return 2;
    }
    throw error;
  }
  const { logger, policy, load, sessions } = agent.context;
  // The last line of defence. A bug that throws outside a request, or a promise nobody awaited,
  // would otherwise kill the process at once and cut every session on the instance. Instead the
  // instance stops taking new work and lets what is in flight finish, as on SIGTERM, then exits
  // non-zero. close-with-grace (Fastify's maintainers) owns the process-wide part: one listener
  // per event, a second fault or signal during the drain exits at once, and a deadline.
  const graceful = closeWithGrace(
    {
      delay: policy.drainTimeoutSeconds * 1000 + CLOSE_AFTER_DRAIN_MS,
      skip: NOT_A_SHUTDOWN,
      logger: { error: (message: unknown) => logger.error({ detail: String(message) }, 'shutdown') },
      onSecondError: (error) => logger.fatal({ err: error }, 'another uncaught error while draining: exiting now'),
      onSecondSignal: (signal) => logger.warn({ signal }, 'second signal while draining: exiting now'),
      onTimeout: (delay) => logger.error({ delayMs: delay }, 'shutdown did not finish in time: exiting now'),
    },
    async ({ signal, err }) => {
      if (err !== undefined) {
        logger.fatal(
          {
            err,
            inFlight: load.inFlight,
            sessions: sessions.size,
            drainTimeoutSeconds: policy.drainTimeoutSeconds,
          },
          'uncaught error: draining, then exiting 1 so that the platform restarts the agent',
        );
      }
      try {
        await agent.shutdown(err !== undefined ? 'uncaught error' : signal);
      } catch (error) {
        logger.error({ err: error }, 'shutdown failed');
        throw error;
      }
    },
  );
  await agent.stopped;
  // Stopped by itself (recycling); on a signal or a crash close-with-grace exits the process.
  graceful.uninstall();
  return 0;
}

/** Why a listen failed, in words for the flag's error line. */
function listenFailure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return 'the address is already in use: stop what listens there, or choose another port';
  if (code === 'EACCES') return 'permission denied: ports below 1024 need privileges; choose a higher port';
  if (code === 'EADDRNOTAVAIL') return 'no network interface of this machine has that address';
  return `cannot listen (${code ?? (error instanceof Error ? error.message : String(error))})`;
}
