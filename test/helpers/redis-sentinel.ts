/**
 * A real Sentinel-managed Redis on loopback for failover tests: a primary, one replica and three
 * sentinels (quorum 2), each a redis-server process on a free port, keeping nothing on disk. The
 * sentinels mark a silent primary down after `downAfterMs` and promote the replica.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ask, askRaw, type FailoverSet, failoverSet, redisProcesses, waitFor } from './redis-process-set.js';
import { freePort } from './redis-server.js';

export const PRIMARY_NAME = 'sfprimary';

export async function startSentinelSet(options: { downAfterMs?: number } = {}): Promise<FailoverSet> {
  const processes = redisProcesses('sessionfleet-sentinel-');
  const { dir } = processes;
  const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'];

  const primary = await freePort();
  const replica = await freePort();
  await processes.launch(primary, ['--port', String(primary), '--dir', dir, ...common]);
  await processes.launch(replica, [
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
    async () => (await ask(replica, 'INFO', 'replication')).includes('master_link_status:up'),
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
    await processes.launch(port, [file, '--sentinel']);
    sentinels.push(port);
  }
  const askSentinel = async (...command: string[]) => {
    const reply = await askRaw(sentinels[0]!, 'SENTINEL', ...command);
    if (reply === undefined) throw new Error(`the sentinel on ${sentinels[0]} does not answer`);
    return reply;
  };

  // Every sentinel knows the others and the replica before any test fault.
  await waitFor(
    async () => {
      const master = (await askSentinel('master', PRIMARY_NAME)) as string[];
      const field = (name: string) => Number(master[master.indexOf(name) + 1]);
      return field('num-other-sentinels') === 2 && field('num-slaves') === 1;
    },
    15_000,
    'sentinels to discover each other',
  );

  return failoverSet(processes, {
    // Every sentinel and the primary's name.
    url: `redis-sentinel://${sentinels.map((p) => `127.0.0.1:${p}`).join(',')}/${PRIMARY_NAME}`,
    dataPorts: [primary, replica],
    primaryPort: async () => {
      const [, port] = (await askSentinel('get-master-addr-by-name', PRIMARY_NAME)) as [string, string];
      return Number(port);
    },
    replicaPort: async (primaryPort) => [primary, replica].find((port) => port !== primaryPort)!,
    promotion: 'a replica to be promoted',
  });
}
