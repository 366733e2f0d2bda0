/**
 * Builds what a coordinator needs from an agent (config, policy, session table, metrics) without
 * starting fronts, and gives each test a fleet name of its own so tests sharing the run's Redis
 * never see each other's keys, and the ports and flags that make agent processes one fleet's members.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { AgentConfig } from '../../../agent/core/config.js';
import { InstanceLoad } from '../../../agent/core/load.js';
import { createLogger } from '../../../agent/core/logger.js';
import { createMetrics } from '../../../agent/core/metrics.js';
import { type EndReason, type Session, SessionTable } from '../../../agent/core/sessions.js';
import { fleetKeys } from '../../../agent/fleet/keys.js';
import type { FleetContext } from '../../../agent/fleet/types.js';
import { type PolicyInput, validatePolicy } from '../../../policy/index.js';
import { redisEndpoint } from '../../../policy/redis-url.js';
import { type AgentProcess, spawnAgent } from '../../helpers/http-agent-process.js';
import { freePort } from '../../helpers/redis-server.js';

export function uniqueFleet(): string {
  return `t-${randomUUID().slice(0, 8)}`;
}

export interface TestContext extends FleetContext {
  readonly ended: Array<[string, EndReason]>;
  close(): void;
}

export function testContext(options: {
  instanceId: string;
  redisUrl?: string;
  policy?: Partial<PolicyInput>;
  port?: number;
}): TestContext {
  const result = validatePolicy({ affinity: { type: 'header', headerName: 'x-session' }, ...options.policy });
  if (!result.ok) throw new Error(result.errors.map((e) => e.message).join('\n'));
  const policy = result.policy;
  const listeners: Array<(s: Session, r: EndReason) => void> = [];
  const ended: Array<[string, EndReason]> = [];
  const sessions = new SessionTable({
    policy,
    sweepIntervalMs: 60_000,
    onEnd: (s, r) => {
      ended.push([s.id, r]);
      for (const l of listeners) l(s, r);
    },
  });
  const port = options.port ?? 40_000 + Math.floor(Math.random() * 1000);
  const config: AgentConfig = {
    policyFile: '',
    upstream: new URL('http://127.0.0.1:1'),
    listen: { host: '127.0.0.1', port },
    adminListen: { host: '127.0.0.1', port: 0 },
    instanceId: options.instanceId,
    advertise: new URL(`http://127.0.0.1:${port}`),
    advertiseExplicit: true,
    probeIntervalMs: 1000,
    unhealthyAfterMs: 10_000,
    logLevel: 'silent',
    ...(options.redisUrl ? { redis: redisEndpoint(options.redisUrl) } : {}),
  };
  return {
    config,
    policy,
    logger: createLogger({ level: 'silent', instanceId: options.instanceId }),
    metrics: createMetrics({ instanceId: options.instanceId, defaultMetrics: false }),
    sessions,
    load: new InstanceLoad(policy.concurrencyPerInstance),
    onSessionEnd: (l) => {
      listeners.push(l);
    },
    ended,
    close: () => sessions.close(),
  };
}

/** A plain connection for assertions on what the scripts wrote. */
export async function inspector(url: string): Promise<Redis> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  return redis;
}

export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
  everyMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Agents of one fleet, each a coordinator over its own session table, started and stopped together. */
export interface TestAgent {
  readonly id: string;
  readonly context: TestContext;
  readonly coordinator: import('../../../agent/fleet/coordinator.js').FleetCoordinator;
  /** Sudden death: no more heartbeats, connections dropped, nothing released. */
  crash(): void;
  /** A stalled heartbeat: no lease renewal for `ms`, everything else running. */
  pauseHeartbeat(ms: number): Promise<void>;
}

export async function startAgents(
  ids: readonly string[],
  options: {
    url: string;
    fleet?: string;
    policy?: Partial<PolicyInput>;
    coordinator?: Partial<import('../../../agent/fleet/coordinator.js').FleetCoordinatorOptions>;
  },
): Promise<{ agents: TestAgent[]; fleet: string; stop(): Promise<void> }> {
  const { FleetCoordinator } = await import('../../../agent/fleet/coordinator.js');
  const { fleetFaults } = await import('./faults.js');
  const fleet = options.fleet ?? uniqueFleet();
  const agents = ids.map((id, i): TestAgent => {
    const context = testContext({ instanceId: id, redisUrl: options.url, policy: options.policy, port: 41_000 + i });
    const faults = fleetFaults(options.url, options.coordinator?.commandTimeoutMs);
    const coordinator = new FleetCoordinator(context, {
      fleet,
      leaseMs: 1000,
      activityFlushMs: 100,
      sweepIntervalMs: 200,
      connect: faults.connect,
      scheduler: faults.scheduler,
      ...options.coordinator,
    });
    return { id, context, coordinator, crash: faults.crash, pauseHeartbeat: faults.pauseHeartbeat };
  });
  await Promise.all(agents.map((a) => a.coordinator.start()));
  // Every agent has seen every other one (placement reads the leases in Redis, routing by hint
  // reads this cached view).
  await Promise.all(agents.map((a) => a.coordinator.refresh()));
  return {
    agents,
    fleet,
    stop: async () => {
      await Promise.all(agents.map((a) => a.coordinator.stop()));
      for (const a of agents) a.context.close();
    },
  };
}

export type FleetAdmin<Id extends string> = ReturnType<typeof fleetAdmin<Id>>;

/** The fleet admin API of a set of agent processes, by their test id, with the admin token. */
export function fleetAdmin<Id extends string>(adminUrl: (agent: Id) => string, token: string) {
  const admin = async (agent: Id, path: string, method = 'GET') => {
    const response = await fetch(`${adminUrl(agent)}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}` },
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  return {
    admin,
    /** The fleet's instances as `agent` sees them. */
    instances: async (agent: Id) =>
      (await admin(agent, '/admin/fleet/instances')).body.instances as Array<{ id: string; alive: boolean }>,
    /** The owner instance of each session, from the fleet inventory asked of `via`. */
    owners: async (via: Id): Promise<Record<string, string | null>> => {
      const sessions = (await admin(via, '/admin/fleet/sessions')).body.sessions as Array<{
        id: string;
        owner: string;
      }>;
      return Object.fromEntries(sessions.map((s) => [s.id, s.owner]));
    },
  };
}

/** One distinct free loopback port per member id. */
export async function memberPorts<Id extends string>(ids: readonly Id[]): Promise<Record<Id, number>> {
  const ports = new Set<number>();
  while (ports.size < ids.length) ports.add(await freePort());
  const list = [...ports];
  return Object.fromEntries(ids.map((id, i) => [id, list[i]!])) as Record<Id, number>;
}

/** The flags of one fleet member listening (and advertised) on 127.0.0.1:`port`. */
export function memberArgs(member: {
  id: string;
  port: number;
  redisUrl: string;
  fleet: string;
  adminToken: string;
}): string[] {
  const { id, port, redisUrl, fleet, adminToken } = member;
  return [
    ['--listen', `127.0.0.1:${port}`],
    ['--advertise', `http://127.0.0.1:${port}`],
    ['--instance-id', id],
    ['--redis', redisUrl],
    ['--fleet', fleet],
    ['--admin-token', adminToken],
  ].flat();
}

/**
 * HTTP agent processes that are the members of one new fleet (`memberArgs`, then `extraArgs`),
 * each in front of `upstream(id)`. Started all at once, or `inOrder` (each then has the ones before
 * it in its view of the fleet from its registration on); ready once the first sees every member
 * alive. `respawn` starts a member again with the same flags (as a restarted pod keeps its name
 * and address).
 */
export async function spawnMembers<Id extends string>(options: {
  ids: readonly Id[];
  policy: Record<string, unknown>;
  upstream: (id: Id) => string;
  redisUrl: string;
  adminToken: string;
  extraArgs?: readonly string[];
  inOrder?: boolean;
  /** Environment of every member (added to the test's own). */
  env?: NodeJS.ProcessEnv;
}): Promise<{ fleet: string; agents: Record<Id, AgentProcess>; respawn(id: Id): Promise<AgentProcess> }> {
  const { ids, redisUrl, adminToken } = options;
  const fleet = uniqueFleet();
  const portOf = await memberPorts(ids);
  const agents = {} as Record<Id, AgentProcess>;
  const spawn = (id: Id) =>
    spawnAgent({
      policy: options.policy,
      upstream: options.upstream(id),
      args: [...memberArgs({ id, port: portOf[id], redisUrl, fleet, adminToken }), ...(options.extraArgs ?? [])],
      ...(options.env ? { env: options.env } : {}),
    });
  if (options.inOrder) for (const id of ids) agents[id] = await spawn(id);
  else await Promise.all(ids.map(async (id) => (agents[id] = await spawn(id))));
  const { instances } = fleetAdmin<Id>((agent) => agents[agent].adminUrl, adminToken);
  await waitFor(
    `${ids.length} live members`,
    async () => (await instances(ids[0]!)).filter((i) => i.alive).length === ids.length,
    10_000,
    50,
  );
  return {
    fleet,
    agents,
    respawn: async (id) => (agents[id] = await spawn(id)),
  };
}

/**
 * Sets `instanceId`'s lease deadline in `fleet`'s registry to Redis's own "now": its lease has run
 * out this moment, whatever the agents' views of the fleet still say. Resolves with how many
 * leases changed (1 when the instance was registered).
 */
export async function lapseLease(redis: Redis, fleet: string, instanceId: string): Promise<number> {
  const [seconds, micros] = await redis.time();
  const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  return redis.zadd(fleetKeys({ fleet }).leases, 'XX', 'CH', now, instanceId);
}
