/**
 * The lock across processes, each with its own Redis connections, against the run's real Redis:
 * 3 agents × 50 contending clients × 20 cycles on one session, and a holder killed with SIGKILL.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { fleetKeys } from '../../../agent/fleet/keys.js';
import { RedisLock } from '../../../agent/fleet/lock.js';
import { createFleetRedis } from '../../../agent/fleet/redis.js';
import { redisEndpoint } from '../../../policy/redis-url.js';
import { REPO_ROOT } from '../../helpers/run.js';
import { inspector, uniqueFleet } from './helpers.js';

const url = inject('redisUrl');
const children = new Set<ChildProcess>();
let dir: string;
let plain: Redis;

function child(script: string, args: string[]): ChildProcess {
  const proc = spawn(process.execPath, ['--import', 'tsx', join('test/agent/fleet/fixtures', script), ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  return proc;
}

function exited(proc: ChildProcess): Promise<{ code: number | null; stderr: string }> {
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => proc.on('exit', (code) => resolve({ code, stderr })));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sessionfleet-lock-'));
  plain = await inspector(url);
});

afterAll(async () => {
  for (const proc of children) proc.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  await plain.quit();
});

interface Hold {
  pid: number;
  token: number;
  startEvent: number;
  endEvent: number;
  witness: number;
  startMs: number;
  endMs: number;
}

describe('the lock across processes', () => {
  it('never grants twice: 3 agents × 50 contenders × 20 cycles, tokens strictly increasing', async () => {
    const fleet = uniqueFleet();
    const [agents, contenders, cycles] = [3, 50, 20];
    const outputs = Array.from({ length: agents }, (_, i) => join(dir, `agent-${i}.jsonl`));
    const runs = outputs.map((out) =>
      exited(child('lock-contender.ts', [url, fleet, 'shared-session', String(contenders), String(cycles), out])),
    );
    for (const { code, stderr } of await Promise.all(runs)) expect(code, stderr).toBe(0);

    const holds: Hold[] = outputs.flatMap((out) =>
      readFileSync(out, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Hold),
    );
    expect(holds).toHaveLength(agents * contenders * cycles);
    expect(new Set(holds.map((h) => h.pid)).size).toBe(agents);
    // Inside every hold the witness counter read 1: nobody else was inside at the same time.
    expect(holds.filter((h) => h.witness !== 1)).toEqual([]);
    // On Redis's own timeline, each hold ends before the next one starts...
    holds.sort((a, b) => a.startEvent - b.startEvent);
    const interleaved = holds.filter((h, i) => i > 0 && holds[i - 1]!.endEvent > h.startEvent);
    expect(interleaved).toEqual([]);
    // ...and in that order the fencing tokens strictly increase.
    const notIncreasing = holds.filter((h, i) => i > 0 && h.token <= holds[i - 1]!.token);
    expect(notIncreasing).toEqual([]);
    // The wall clocks of the three processes agree (within a millisecond of clock reading).
    const overlapping = holds.filter((h, i) => i > 0 && holds[i - 1]!.endMs > h.startMs + 1);
    expect(overlapping).toEqual([]);
    // Nobody is left in the queue or holding the lock.
    const keys = fleetKeys({ fleet });
    expect(await plain.exists(keys.lockHolder('shared-session'), keys.lockQueue('shared-session'))).toBe(0);
  }, 60_000);

  it('a holder killed with SIGKILL releases within the lock TTL', async () => {
    const fleet = uniqueFleet();
    const ttl = 1000;
    const holder = child('lock-holder.ts', [url, fleet, 'killed-session', String(ttl)]);
    const token = await new Promise<number>((resolve, reject) => {
      let out = '';
      holder.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const match = /held (\d+)/.exec(out);
        if (match) resolve(Number(match[1]));
      });
      holder.on('exit', (code) => reject(new Error(`holder exited with ${code}`)));
    });
    // Let the holder renew a few times, so a release by TTL is not a first-TTL accident.
    await new Promise((r) => setTimeout(r, 1500));
    const redis = createFleetRedis(redisEndpoint(url), { name: 'after-kill' });
    await redis.connect();
    const lock = new RedisLock({ redis, keys: fleetKeys({ fleet }), ttlMs: ttl, waitMs: 5000 });
    await expect(lock.acquire('killed-session', { waitMs: 0 })).rejects.toMatchObject({ code: 'SESSION_BUSY' });

    const killedAt = Date.now();
    holder.kill('SIGKILL');
    const lease = await lock.acquire('killed-session');
    const waited = Date.now() - killedAt;
    expect(waited).toBeLessThanOrEqual(ttl + 100);
    // It was really held until the TTL ran out, not released by the dying process.
    expect(waited).toBeGreaterThan(ttl / 2);
    expect(lease.token).toBeGreaterThan(token);
    await lease.release();
    redis.disconnect();
  });
});
