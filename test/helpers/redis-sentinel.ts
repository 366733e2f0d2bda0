/**
 * A real Sentinel-managed Redis on loopback for failover tests: a primary, one replica and three
 * sentinels (quorum 2), each a redis-server process on a free port, keeping nothing on disk. The
 * sentinels mark a silent primary down after `downAfterMs` and promote the replica.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, redisServerBinary } from './redis-server.js';

export const PRIMARY_NAME = 'sfprimary';

export interface SentinelSet {
  /** The `--redis` URL the agents are given: every sentinel and the primary's name. */
  readonly url: string;
  readonly dataPorts: readonly number[];
  /** The data port the sentinels name as primary now. */
  primaryPort(): Promise<number>;
  /** A replica of the primary on `primaryPort`. */
  replicaPort(primaryPort: number): Promise<number>;
  /** Sends a signal to the data server on `port` (SIGKILL: a crash; SIGSTOP: a stall). */
  signal(port: number, signal: NodeJS.Signals): void;
  /**
   * Starts a killed data server again on its port, as it was first started; the sentinels turn a
   * returning former primary into a replica of the current one.
   */
  restart(port: number): Promise<void>;
  /** Resolves once the sentinels name a primary other than `port` and it accepts writes. */
  waitForPromotion(fromPort: number, timeoutMs?: number): Promise<number>;
  stop(): Promise<void>;
}

export async function startSentinelSet(options: { downAfterMs?: number } = {}): Promise<SentinelSet> {
  const binary = redisServerBinary();
  const dir = mkdtempSync(join(tmpdir(), 'sessionfleet-sentinel-'));
  const children = new Map<number, ChildProcess>();
  const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'];

  const commands = new Map<number, string[]>();
  const launch = (port: number, args: string[]) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    children.set(port, child);
    commands.set(port, args);
    return waitForPing(port);
  };

  const primary = await freePort();
  const replica = await freePort();
  await launch(primary, ['--port', String(primary), '--dir', dir, ...common]);
  await launch(replica, [
    '--port',
    String(replica),
    '--dir',
    dir,
    ...common,
    '--replicaof',
    '127.0.0.1',
    String(primary),
  ]);
  await waitFor(
    async () => (await info(replica, 'replication')).includes('master_link_status:up'),
    10_000,
    'replica in sync',
  );

  const sentinels: number[] = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    const file = join(dir, `sentinel-${port}.conf`);
    // Sentinel rewrites its own configuration file, so each gets one it may write.
    writeFileSync(
      file,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${PRIMARY_NAME} 127.0.0.1 ${primary} 2`,
        `sentinel down-after-milliseconds ${PRIMARY_NAME} ${options.downAfterMs ?? 1000}`,
        `sentinel failover-timeout ${PRIMARY_NAME} 5000`,
        `sentinel parallel-syncs ${PRIMARY_NAME} 1`,
        '',
      ].join('\n'),
    );
    await launch(port, [file, '--sentinel']);
    sentinels.push(port);
  }
  const url = `redis-sentinel://${sentinels.map((p) => `127.0.0.1:${p}`).join(',')}/${PRIMARY_NAME}`;

  const primaryPort = async () => {
    const sentinel = new Redis({ port: sentinels[0], host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await sentinel.connect();
      const [, port] = (await sentinel.call('SENTINEL', 'get-master-addr-by-name', PRIMARY_NAME)) as [string, string];
      return Number(port);
    } finally {
      sentinel.disconnect();
    }
  };
  // Every sentinel knows the others and the replica before any test fault.
  await waitFor(
    async () => {
      const sentinel = new Redis({ port: sentinels[0], host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await sentinel.connect();
        const master = (await sentinel.call('SENTINEL', 'master', PRIMARY_NAME)) as string[];
        const field = (name: string) => Number(master[master.indexOf(name) + 1]);
        return field('num-other-sentinels') === 2 && field('num-slaves') === 1;
      } finally {
        sentinel.disconnect();
      }
    },
    15_000,
    'sentinels to discover each other',
  );

  const set: SentinelSet = {
    url,
    dataPorts: [primary, replica],
    primaryPort,
    replicaPort: async (primaryPort) => [primary, replica].find((port) => port !== primaryPort)!,
    signal(port, signal) {
      children.get(port)?.kill(signal);
    },
    restart(port) {
      return launch(port, commands.get(port)!);
    },
    async waitForPromotion(fromPort, timeoutMs = 20_000) {
      let promoted = fromPort;
      await waitFor(
        async () => {
          promoted = await primaryPort();
          return promoted !== fromPort && (await info(promoted, 'replication')).includes('role:master');
        },
        timeoutMs,
        'a replica to be promoted',
      );
      return promoted;
    },
    stop: () => stopAll(children, dir),
  };
  process.once('exit', () => {
    for (const child of children.values()) child.kill('SIGKILL');
  });
  return set;
}

/** Replicas of the server on `port` that are in sync (state=online in its INFO replication). */
export async function connectedReplicas(port: number): Promise<number> {
  return (await info(port, 'replication')).match(/^slave\d+:.*state=online/gm)?.length ?? 0;
}

async function info(port: number, section: string): Promise<string> {
  const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 500 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return await redis.info(section);
  } catch {
    return '';
  } finally {
    redis.disconnect();
  }
}

async function waitForPing(port: number): Promise<void> {
  await waitFor(async () => (await info(port, 'server')).includes('redis_version'), 10_000, `redis on ${port}`);
}

/** Stops every process of a set (woken first if stopped by SIGSTOP) and removes its folder. */
export async function stopAll(children: ReadonlyMap<number, ChildProcess>, dir: string): Promise<void> {
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
}

export async function waitFor(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
