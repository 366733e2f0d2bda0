/**
 * The processes of a replicated Redis on loopback, shared by `redis-sentinel.ts` and
 * `redis-cluster.ts`: each a redis-server on a port of its own, in one temporary folder; launched
 * and waited for, signalled (a crash, a stall), restarted as it was first started, and stopped
 * with its folder. `failoverSet` adds what a failover test asks of either store around the two
 * things that differ: where the primary is, and which replica it has.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { redisServerBinary } from './redis-server.js';

/** A replicated store as a failover test drives it (test/agent/fleet/failover-suite.ts). */
export interface FailoverSet {
  /** The `--redis` URL the agents are given. */
  readonly url: string;
  readonly dataPorts: readonly number[];
  /** The data port serving as primary now (on a cluster: of the fleet's slot). */
  primaryPort(): Promise<number>;
  /** A replica of the primary on `primaryPort`. */
  replicaPort(primaryPort: number): Promise<number>;
  /** Sends a signal to the data server on `port` (SIGKILL: a crash; SIGSTOP: a stall). */
  signal(port: number, signal: NodeJS.Signals): void;
  /**
   * Starts a killed data server again on its port, as it was first started; the store turns a
   * returning former primary into a replica of the current one.
   */
  restart(port: number): Promise<void>;
  /** Resolves once a primary other than `fromPort` is named and it accepts writes. */
  waitForPromotion(fromPort: number, timeoutMs?: number): Promise<number>;
  stop(): Promise<void>;
}

export interface RedisProcesses {
  /** The set's temporary folder: data, and the configuration files the servers rewrite. */
  readonly dir: string;
  /** Starts redis-server with `args` as the process on `port`; resolves once it answers. */
  launch(port: number, args: readonly string[]): Promise<void>;
  signal(port: number, signal: NodeJS.Signals): void;
  /** Launches the process on `port` again with the arguments it was first launched with. */
  restart(port: number): Promise<void>;
  /** Stops every process (woken first if stopped by SIGSTOP) and removes the folder. */
  stop(): Promise<void>;
}

export function redisProcesses(folderPrefix: string): RedisProcesses {
  const binary = redisServerBinary();
  const dir = mkdtempSync(join(tmpdir(), folderPrefix));
  const children = new Map<number, ChildProcess>();
  const commands = new Map<number, readonly string[]>();
  process.once('exit', () => {
    for (const child of children.values()) child.kill('SIGKILL');
  });
  const launch = (port: number, args: readonly string[]) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    children.set(port, child);
    commands.set(port, args);
    return waitFor(async () => (await ask(port, 'PING')) === 'PONG', 10_000, `redis on ${port}`);
  };
  return {
    dir,
    launch,
    signal(port, signal) {
      children.get(port)?.kill(signal);
    },
    restart: (port) => launch(port, commands.get(port)!),
    async stop() {
      await Promise.all(
        [...children.values()].map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGCONT');
              child.kill('SIGKILL');
            }),
        ),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A `FailoverSet` over `processes`, from what its store tells apart. */
export function failoverSet(
  processes: RedisProcesses,
  store: Pick<FailoverSet, 'url' | 'dataPorts' | 'primaryPort' | 'replicaPort'> & {
    /** What `waitForPromotion` waits for, in its timeout message. */
    readonly promotion: string;
  },
): FailoverSet {
  const { promotion, ...parts } = store;
  return {
    ...parts,
    signal: processes.signal,
    restart: processes.restart,
    async waitForPromotion(fromPort, timeoutMs = 20_000) {
      let promoted = fromPort;
      await waitFor(
        async () => {
          promoted = await store.primaryPort();
          return promoted !== fromPort && (await ask(promoted, 'INFO', 'replication')).includes('role:master');
        },
        timeoutMs,
        promotion,
      );
      return promoted;
    },
    stop: processes.stop,
  };
}

/** One command to the server on `port` over a connection of its own; undefined when it does not answer. */
export async function askRaw(port: number, ...command: string[]): Promise<unknown> {
  const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 500 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return await redis.call(command[0]!, ...command.slice(1));
  } catch {
    return undefined;
  } finally {
    redis.disconnect();
  }
}

/** `askRaw`'s reply as text; '' when the server does not answer. */
export async function ask(port: number, ...command: string[]): Promise<string> {
  const reply = await askRaw(port, ...command);
  return reply === undefined || reply === null ? '' : String(reply);
}

/** Replicas of the server on `port` that are in sync (state=online in its INFO replication). */
export async function connectedReplicas(port: number): Promise<number> {
  return (await ask(port, 'INFO', 'replication')).match(/^slave\d+:.*state=online/gm)?.length ?? 0;
}

export async function waitFor(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
