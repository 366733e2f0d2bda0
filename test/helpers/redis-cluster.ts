/**
 * A real Redis Cluster on loopback for failover tests: three primaries with one replica each, six
 * redis-server processes on free ports, keeping nothing on disk (the cluster's own node files live
 * in a temporary folder). A primary silent for `nodeTimeoutMs` is failed over to its replica by
 * the cluster itself. Shaped like `redis-sentinel.ts`'s set, so one failover test drives both; the
 * "primary" here is the one serving `slotKey`'s slot (a fleet's keys all share one).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { type SentinelSet, stopAll, waitFor } from './redis-sentinel.js';
import { freePort, redisServerBinary } from './redis-server.js';

const run = promisify(execFile);

export type ClusterSet = SentinelSet;

export async function startRedisCluster(options: { slotKey: string; nodeTimeoutMs?: number }): Promise<ClusterSet> {
  const binary = redisServerBinary();
  const cli = join(binary, '..', 'redis-cli');
  const dir = mkdtempSync(join(tmpdir(), 'sessionfleet-cluster-'));
  const children = new Map<number, ChildProcess>();
  const commands = new Map<number, string[]>();
  const launch = (port: number, args: string[]) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    children.set(port, child);
    commands.set(port, args);
    return waitFor(async () => (await ask(port, 'PING')) === 'PONG', 10_000, `redis on ${port}`);
  };

  const ports: number[] = [];
  for (let i = 0; i < 6; i++) ports.push(await freePort());
  for (const port of ports)
    await launch(port, [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--loglevel',
      'warning',
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      `nodes-${port}.conf`,
      '--cluster-node-timeout',
      String(options.nodeTimeoutMs ?? 1000),
    ]);
  await run(cli, [
    '--cluster',
    'create',
    ...ports.map((p) => `127.0.0.1:${p}`),
    '--cluster-replicas',
    '1',
    '--cluster-yes',
  ]);
  await waitFor(
    async () => ports.every(Boolean) && (await ask(ports[0]!, 'CLUSTER', 'INFO')).includes('cluster_state:ok'),
    20_000,
    'the cluster to be ok',
  );

  const slot = Number(await ask(ports[0]!, 'CLUSTER', 'KEYSLOT', options.slotKey));
  /** The primary serving the slot, as a live node sees it. */
  const primaryPort = async () => {
    for (const port of ports) {
      const shards = (await askRaw(port, 'CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]> | undefined;
      const range = shards?.find(([from, to]) => from <= slot && slot <= to);
      if (range) return Number(range[2][1]);
    }
    throw new Error('no live node knows the slot');
  };
  // Every replica is in sync before any test fault.
  await waitFor(
    async () => {
      const primary = await primaryPort();
      return /^slave0:.*state=online/m.test(await ask(primary, 'INFO', 'replication'));
    },
    20_000,
    'the slot primary to have an online replica',
  );

  const set: ClusterSet = {
    url: `redis-cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    dataPorts: ports,
    primaryPort,
    async replicaPort(primaryPort) {
      const replicas = /^slave0:ip=[^,]*,port=(\d+)/m.exec(await ask(primaryPort, 'INFO', 'replication'));
      if (!replicas) throw new Error(`the primary on ${primaryPort} has no replica`);
      return Number(replicas[1]);
    },
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
          return promoted !== fromPort && (await ask(promoted, 'INFO', 'replication')).includes('role:master');
        },
        timeoutMs,
        'the replica of the slot to be promoted',
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

async function askRaw(port: number, ...command: string[]): Promise<unknown> {
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

async function ask(port: number, ...command: string[]): Promise<string> {
  const reply = await askRaw(port, ...command);
  return reply === undefined || reply === null ? '' : String(reply);
}
