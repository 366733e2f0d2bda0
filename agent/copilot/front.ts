/**
 * The Copilot front: a TCP listener speaking the Copilot CLI's own protocol (JSON-RPC 2.0 with
 * Content-Length framing, SPEC.md §3), in front of one `copilot --headless --port N`. Each client
 * connection gets its own upstream connection (`connection.ts`); the agent keeps one more for
 * itself (`control.ts`: the health probe's `ping`, the session owners' records).
 */
import { createServer, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { AgentContext, Front, ListenAddress } from '../core/context.js';
import type { Logger } from '../core/logger.js';
import { Refusals } from '../core/refusals.js';
import { StateStaging } from '../core/state-staging.js';
import { BudgetSharing, Router } from '../routing/index.js';
import { ANONYMOUS_PRINCIPAL, ClientConnection } from './connection.js';
import { ControlChannel } from './control.js';
import { copilotLimits, HandshakeGate } from './gate.js';
import { hostAccessAllowed, OWNER_METADATA_KEY, OWNER_TENANT_METADATA_KEY } from './methods.js';
import { OwnerDirectory, type Ownership, ownershipOf } from './owners.js';
import { CopilotState } from './state.js';

/** How long shutdown waits for the CLI to answer the agent's `session.detach` calls, and for sockets to close. */
const CLOSE_GRACE_MS = 3000;
/**
 * How long shutdown waits, beyond that, for the sessions' state to be written back to the shared
 * volume (ADR 0019): a copy per session, slower on a network volume; within the pod's
 * termination grace (the drain time plus 15 s).
 */
const STAGING_GRACE_MS = 10_000;

export async function createCopilotFront(context: AgentContext): Promise<Front> {
  const { config } = context;
  const logger = context.logger.child({ front: 'copilot' });
  const host = config.upstream.hostname.replace(/^\[|\]$/g, '');
  const port = Number(config.upstream.port);
  const control = new ControlChannel(host, port, config.upstreamToken, logger);
  // The composition root (server.ts) creates it, Redis or in-process: the front has no say. It
  // places every new session and holds the quotas per principal and tenant, with and without Redis.
  const coordinator = context.coordinator;
  if (!coordinator) throw new Error('the Copilot front needs the agent context with its coordinator');
  const staging =
    config.appStateDir !== undefined && config.sessionStateDir !== undefined
      ? new StateStaging({
          sharedDir: config.sessionStateDir,
          appDir: config.appStateDir,
          lock: coordinator.lock,
          fleetWideTokens: config.redis !== undefined,
        })
      : undefined;
  const owners = new OwnerDirectory(async (ids) => {
    const found = await readOwners(control, ids, context.config.tenant);
    return staging ? withSharedOwners(staging, found, context.config.tenant) : found;
  });
  const state = new CopilotState(context, owners, staging);
  const router = new Router({
    coordinator,
    sessions: context.sessions,
    instanceId: config.instanceId,
    policy: context.policy,
    purpose: 'copilot-hop',
    draining: () => context.draining,
  });
  const methods = { hostAccess: hostAccessAllowed(context.policy, staging !== undefined) };
  if (methods.hostAccess && context.policy.isolation !== 'session') {
    logger.warn(
      "copilotHostAccess: Copilot clients may run shell commands and read files on a host that holds other users' session state",
    );
  }
  if (!context.principals && !context.jwt) {
    logger.warn(
      `no --principals: every Copilot client is accepted as principal "${ANONYMOUS_PRINCIPAL}", so sessions are not isolated between users`,
    );
  }

  if (config.principalHeader !== undefined || config.tenantHeader !== undefined) {
    logger.warn(
      '--principal-header and --tenant-header are read by the HTTP front; a Copilot client is named by its token in --principals (principal and tenant)',
    );
  }

  // policy.limits: the same budgets as the HTTP front's, shared with the fleet the same way (ADR 0025).
  const sharing = new BudgetSharing(context.policy.limits, {
    front: 'copilot',
    metrics: context.metrics,
    logger,
    fleet: coordinator.budgets,
  });
  const connections = new Set<ClientConnection>();
  const refusals = new Refusals('copilot', context.metrics, logger);
  const gate = new HandshakeGate(
    copilotLimits(config.limits),
    context.metrics,
    refusals,
    context.policy.expiredSessionStatus,
  );
  // What the open connections hold, read at each scrape (a test checks it returns to 0).
  const buffered = () => {
    let total = 0;
    for (const connection of connections) total += connection.bufferedBytes;
    return total;
  };
  context.metrics.bufferedBytesSources.add(buffered);
  let accepting = true;
  const server = createServer((socket: Socket) => {
    if (!accepting) {
      socket.destroy();
      return;
    }
    if (!gate.admit(socket)) return;
    const connection = new ClientConnection(socket, {
      context,
      state,
      router,
      methods,
      control,
      logger,
      upstream: { host, port, token: config.upstreamToken },
      frame: {},
      gate,
      budgets: sharing.budgets,
      onClosed: (c) => connections.delete(c),
    });
    connections.add(connection);
  });
  const serverClosed = new Promise<void>((resolve) => server.once('close', () => resolve()));
  const stopAccepting = () => {
    if (!accepting) return;
    accepting = false;
    server.close();
  };

  return {
    kind: 'copilot',

    async listen(): Promise<ListenAddress> {
      if (staging) await reclaimLeftovers(staging, logger);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.listen.port, config.listen.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      const address = server.address();
      if (typeof address !== 'object' || !address) throw new Error('the Copilot front has no address');
      return { host: address.address, port: address.port };
    },

    probeCheck() {
      return async (signal: AbortSignal) => {
        await control.call('ping', { message: 'sessionfleet-probe' }, 5000, signal);
      };
    },

    async terminate(sessionId: string): Promise<boolean> {
      // The end listener detaches it on the CLI: its state stays, the owner can resume it.
      return context.sessions.end(sessionId, 'terminated');
    },

    async drain(): Promise<void> {
      // New connections are refused; requests that would start sessions or turns get DRAINING.
      stopAccepting();
      await state.whenIdle();
    },

    usage() {
      return sharing.budgets.use();
    },

    async close(): Promise<void> {
      stopAccepting();
      sharing.stop();
      await Promise.race([state.detachesSettled(), delay(CLOSE_GRACE_MS)]);
      if (staging) {
        const timeout = new AbortController();
        await Promise.race([
          staging.settled(),
          delay(STAGING_GRACE_MS, undefined, { signal: timeout.signal }).catch(() => {}),
        ]);
        timeout.abort();
      }
      const open = [...connections];
      for (const connection of open) connection.close();
      await Promise.race([Promise.all(open.map((c) => c.closed)), delay(CLOSE_GRACE_MS)]);
      control.close();
      context.metrics.bufferedBytesSources.delete(buffered);
      await Promise.race([serverClosed, delay(CLOSE_GRACE_MS)]);
    },
  };
}

/**
 * With staging the CLI knows only the sessions loaded on this instance: for the others, the owner
 * is read from the metadata the CLI saved with the state on the shared volume — by the agent,
 * without copying anything into the app's directory before the caller is authorized.
 */
async function withSharedOwners(
  staging: StateStaging,
  found: Map<string, Ownership>,
  defaultTenant: string | undefined,
): Promise<Map<string, Ownership>> {
  for (const [id, ownership] of found) {
    if (ownership.state !== 'absent') continue;
    const metadata = await staging.sharedMetadata(id);
    if (metadata !== undefined) found.set(id, ownershipOf(metadata, defaultTenant));
  }
  return found;
}

/**
 * Session state left in the app's directory by an earlier run of the agent (killed before it could
 * write it back): written back (fenced, so never over a newer copy) and removed before any client is
 * served, so the app holds no session it is not serving.
 */
async function reclaimLeftovers(staging: StateStaging, logger: Logger): Promise<void> {
  for (const id of await staging.appSessions()) {
    try {
      await staging.release(id, 'save');
      logger.warn(
        { sessionId: id },
        "session state left in the app's directory by an earlier run: written back and removed",
      );
    } catch (error) {
      logger.error(
        { sessionId: id, err: error instanceof Error ? error.message : String(error) },
        "session state left in the app's directory by an earlier run could not be written back: removed",
      );
    }
  }
}

/**
 * Reads `sessionfleet/owner` and `sessionfleet/tenant` from the client metadata the CLI keeps with
 * each session. A record without a tenant belongs to `defaultTenant` (`--tenant`): see
 * `OWNER_TENANT_METADATA_KEY`.
 */
async function readOwners(
  control: ControlChannel,
  sessionIds: readonly string[],
  defaultTenant: string | undefined,
): Promise<Map<string, Ownership>> {
  const result = await control.call('sessions.getClientMetadata', {
    sessionIds,
    keys: [OWNER_METADATA_KEY, OWNER_TENANT_METADATA_KEY],
  });
  const found = new Map<string, Ownership>();
  if (Array.isArray(result)) {
    for (const entry of result as Array<{
      sessionId?: unknown;
      status?: unknown;
      metadata?: Record<string, unknown>;
    }>) {
      if (typeof entry?.sessionId !== 'string') continue;
      if (entry.status === 'notFound') found.set(entry.sessionId, { state: 'absent' });
      else if (entry.status === 'ok') found.set(entry.sessionId, ownershipOf(entry.metadata ?? {}, defaultTenant));
      else found.set(entry.sessionId, { state: 'unowned' });
    }
  }
  // An id the CLI did not answer for is treated as someone else's: never as free to take.
  for (const id of sessionIds) if (!found.has(id)) found.set(id, { state: 'unowned' });
  return found;
}
