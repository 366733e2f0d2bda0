/**
 * A real Redis Cluster on loopback for failover tests: three primaries with one replica each, six
 * redis-server processes on free ports, keeping nothing on disk (the cluster's own node files live
 * in a temporary folder). A primary silent for `nodeTimeoutMs` is failed over to its replica by
 * the cluster itself. A `FailoverSet` like `redis-sentinel.ts`'s, so one failover test drives both;
 * the "primary" here is the one serving `slotKey`'s slot (a fleet's keys all share one).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ask, askRaw, type FailoverSet, failoverSet, redisProcesses, waitFor } from './redis-process-set.js';
import { freePort, redisServerBinary } from './redis-server.js';

const run = promisify(execFile);

export async function startRedisCluster(options: { slotKey: string; nodeTimeoutMs?: number }): Promise<FailoverSet> {
  const cli = join(redisServerBinary(), '..', 'redis-cli');
  const processes = redisProcesses('sessionfleet-cluster-');
  const { dir } = processes;

  const ports: number[] = [];
  for (let i = 0; i < 6; i++) ports.push(await freePort());
  for (const port of ports)
    await processes.launch(port, [
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

  return failoverSet(processes, {
    url: `redis-cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    dataPorts: ports,
    primaryPort,
    async replicaPort(primaryPort) {
      const replicas = /^slave0:ip=[^,]*,port=(\d+)/m.exec(await ask(primaryPort, 'INFO', 'replication'));
      if (!replicas) throw new Error(`the primary on ${primaryPort} has no replica`);
      return Number(replicas[1]);
    },
    promotion: 'the replica of the slot to be promoted',
  });
}
