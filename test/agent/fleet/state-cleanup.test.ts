/**
 * Session-state cleanup on a temporary "shared volume": only stale directories of sessions that
 * are live nowhere in the fleet go, never by following a link, and only the janitor leader cleans.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { cleanSessionState } from '../../../agent/fleet/state-cleanup.js';
import { startAgents, type TestAgent, waitFor } from './helpers.js';

const url = inject('redisUrl');
const dirs: string[] = [];
let running: Array<{ stop(): Promise<void> }> = [];

afterEach(async () => {
  await Promise.all(running.map((r) => r.stop()));
  running = [];
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const HOUR = 3600 * 1000;

/** A session directory with a file inside, every time set `ageMs` in the past. */
function sessionDir(root: string, id: string, ageMs: number, nested = false): void {
  const dir = join(root, id);
  mkdirSync(join(dir, 'sub'), { recursive: true });
  writeFileSync(join(dir, 'events.jsonl'), '{}\n');
  writeFileSync(join(dir, 'sub', 'x.json'), '{}');
  const t = new Date(Date.now() - ageMs);
  for (const p of [join(dir, 'sub', 'x.json'), join(dir, 'sub'), join(dir, 'events.jsonl'), dir]) utimesSync(p, t, t);
  if (nested) {
    // Old directory, but one file written a minute ago: the session is not stale.
    const fresh = new Date(Date.now() - 60_000);
    utimesSync(join(dir, 'sub', 'x.json'), fresh, fresh);
  }
}

function volume(): { root: string; outside: string } {
  const root = mkdtempSync(join(tmpdir(), 'sessionfleet-state-'));
  const outside = mkdtempSync(join(tmpdir(), 'sessionfleet-outside-'));
  dirs.push(root, outside);
  sessionDir(root, 'stale-dead', 3 * HOUR);
  sessionDir(root, 'stale-but-live', 3 * HOUR);
  sessionDir(root, 'recent', 10 * 60_000);
  sessionDir(root, 'old-dir-new-file', 3 * HOUR, true);
  sessionDir(outside, 'precious', 3 * HOUR);
  symlinkSync(join(outside, 'precious'), join(root, 'link-to-elsewhere'));
  writeFileSync(join(root, 'not-a-session.txt'), 'x');
  return { root, outside };
}

describe('session-state cleanup', () => {
  it('removes only stale directories of sessions live nowhere, never following links', async () => {
    const { root, outside } = volume();
    const report = await cleanSessionState({
      dir: root,
      maxAgeMs: 2 * HOUR,
      isLive: async (ids) => new Set(ids.filter((id) => id === 'stale-but-live')),
    });
    expect(report.removed).toEqual(['stale-dead']);
    expect(report.keptLive).toEqual(['stale-but-live']);
    expect(report.keptRecent).toBe(2);
    expect(report.skipped.sort()).toEqual(['link-to-elsewhere', 'not-a-session.txt']);
    expect(readdirSync(root).sort()).toEqual([
      'link-to-elsewhere',
      'not-a-session.txt',
      'old-dir-new-file',
      'recent',
      'stale-but-live',
    ]);
    expect(readdirSync(join(outside, 'precious')).sort()).toEqual(['events.jsonl', 'sub']);
  });

  it('removes nothing when liveness cannot be checked', async () => {
    const { root } = volume();
    await expect(
      cleanSessionState({
        dir: root,
        maxAgeMs: 2 * HOUR,
        isLive: async () => {
          throw new Error('Redis is away');
        },
      }),
    ).rejects.toThrow('Redis is away');
    expect(readdirSync(root)).toContain('stale-dead');
  });

  it('is done by the janitor leader only, checking liveness against the fleet registry', async () => {
    const { root } = volume();
    const fleet = await startAgents(['agent-a', 'agent-b'], {
      url,
      policy: { sessionLifetimeSeconds: 2 * 3600 },
      coordinator: { sweepIntervalMs: 100, janitorTtlMs: 600, stateCleanup: { dir: root, intervalMs: 100 } },
    });
    running.push(fleet);
    const [a, b] = fleet.agents as [TestAgent, TestAgent];
    // 'stale-but-live' is a session of the fleet, held by b (its directory untouched for hours).
    await b.coordinator.open(await b.coordinator.place(), 'stale-but-live');
    await waitFor('a cleanup run', () => a.coordinator.lastCleanup ?? b.coordinator.lastCleanup);
    expect(readdirSync(root)).not.toContain('stale-dead');
    expect(readdirSync(root)).toContain('stale-but-live');
    // One leader: the other agent never ran a cleanup.
    const leader = a.coordinator.lastCleanup ? a : b;
    const follower = leader === a ? b : a;
    expect(follower.coordinator.lastCleanup).toBeUndefined();
    // The leader dies; the other takes over within the janitor lock's TTL.
    leader.crash();
    sessionDir(root, 'stale-later', 3 * HOUR);
    await waitFor('the follower to take over', () => follower.coordinator.lastCleanup, 5000);
    await waitFor('the new stale directory to go', () => !readdirSync(root).includes('stale-later'));
  });
});
