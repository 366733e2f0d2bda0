/**
 * Session-state staging (ADR 0019) on real directories: what is copied in and back, what is left
 * in the app's directory afterwards (nothing), and the fence that keeps a stalled holder from
 * overwriting a newer copy. The lock is the agent's own in-process lock.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentError } from '../../../agent/core/errors.js';
import { FENCE_FILE, StaleWriteError, StateStaging } from '../../../agent/core/state-staging.js';
import { MemoryLock } from '../../../agent/fleet/lock.js';

let root: string;
let shared: string;
let app: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'sessionfleet-staging-unit-'));
  shared = join(root, 'shared');
  app = join(root, 'app');
  mkdirSync(shared);
  mkdirSync(app);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const staging = (fleetWideTokens = false) =>
  new StateStaging({ sharedDir: shared, appDir: app, lock: new MemoryLock(), fleetWideTokens });

function saved(dir: string, id: string, events: string, owner = 'alice'): void {
  mkdirSync(join(dir, id, 'checkpoints'), { recursive: true });
  writeFileSync(join(dir, id, 'events.jsonl'), events);
  writeFileSync(join(dir, id, 'checkpoints', 'index.md'), '# Checkpoint History\n');
  writeFileSync(
    join(dir, id, 'client-metadata.json'),
    JSON.stringify({ version: 1, metadata: { 'sessionfleet/owner': owner } }),
  );
}
const read = (...path: string[]) => readFileSync(join(...path), 'utf8');

describe('StateStaging', () => {
  it("stages a saved session into the app's directory, group-writable, without the CLI's process-local files", async () => {
    saved(shared, 's1', 'history of s1\n');
    writeFileSync(join(shared, 's1', 'inuse.4242.lock'), '4242');
    writeFileSync(join(shared, 's1', FENCE_FILE), '7');
    expect(await staging().stageIn('s1')).toBe(true);
    expect(read(app, 's1', 'events.jsonl')).toBe('history of s1\n');
    expect(read(app, 's1', 'checkpoints', 'index.md')).toContain('Checkpoint');
    expect(existsSync(join(app, 's1', 'inuse.4242.lock'))).toBe(false);
    expect(existsSync(join(app, 's1', FENCE_FILE))).toBe(false);
    expect(statSync(join(app, 's1', 'events.jsonl')).mode & 0o060).toBe(0o060);
    expect(statSync(join(app, 's1', 'checkpoints')).mode & 0o070).toBe(0o070);
  });

  it('stages nothing for a session the shared volume does not hold, and replaces a stale private copy', async () => {
    expect(await staging().stageIn('new')).toBe(false);
    expect(existsSync(join(app, 'new'))).toBe(false);
    saved(shared, 's1', 'current\n');
    saved(app, 's1', 'stale\n');
    writeFileSync(join(app, 's1', 'leftover.txt'), 'x');
    await staging().stageIn('s1');
    expect(read(app, 's1', 'events.jsonl')).toBe('current\n');
    expect(existsSync(join(app, 's1', 'leftover.txt'))).toBe(false);
  });

  it('writes the private copy back whole (files gone there are gone in the shared copy), with its fencing token', async () => {
    saved(shared, 's1', 'old\n');
    writeFileSync(join(shared, 's1', 'removed-since.txt'), 'x');
    saved(app, 's1', 'old\nnew turn\n');
    const s = staging();
    expect(await s.writeBack('s1')).toBe(true);
    expect(read(shared, 's1', 'events.jsonl')).toBe('old\nnew turn\n');
    expect(existsSync(join(shared, 's1', 'removed-since.txt'))).toBe(false);
    expect(Number(read(shared, 's1', FENCE_FILE))).toBeGreaterThan(0);
    // The app's copy stays while the session is served; nothing is left beside the shared copy.
    expect(read(app, 's1', 'events.jsonl')).toBe('old\nnew turn\n');
    expect(await s.writeBack('absent')).toBe(false);
    expect(existsSync(join(shared, 'absent'))).toBe(false);
    expect(readdirSync(shared)).toEqual(['s1']);
  });

  it('release: writes back, then leaves nothing of the session in the app directory', async () => {
    saved(app, 's1', 'all of it\n');
    mkdirSync(join(app, '.session-operation-locks'));
    writeFileSync(join(app, '.session-operation-locks', 's1.lock'), '');
    await staging().release('s1', 'save');
    expect(read(shared, 's1', 'events.jsonl')).toBe('all of it\n');
    expect(existsSync(join(app, 's1'))).toBe(false);
    expect(existsSync(join(app, '.session-operation-locks', 's1.lock'))).toBe(false);
  });

  it('release of a deleted session removes both copies: nobody can resume it anywhere', async () => {
    saved(shared, 's1', 'x\n');
    saved(app, 's1', 'x\n');
    await staging().release('s1', 'delete');
    expect(existsSync(join(shared, 's1'))).toBe(false);
    expect(existsSync(join(app, 's1'))).toBe(false);
  });

  it('with fleet-wide tokens, a write-back older than the recorded one is refused and the newer copy kept', async () => {
    saved(shared, 's1', 'written by the newer holder\n');
    writeFileSync(join(shared, 's1', FENCE_FILE), String(Number.MAX_SAFE_INTEGER));
    saved(app, 's1', 'written by a holder that stalled\n');
    const error = await staging(true)
      .writeBack('s1')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StaleWriteError);
    expect((error as Error).message).toMatch(
      /^session "s1": write-back with fencing token \d+ refused, the shared state was written under token 9007199254740991$/,
    );
    expect(read(shared, 's1', 'events.jsonl')).toBe('written by the newer holder\n');
    // Released all the same: the stalled holder's copy never stays in the app's directory.
    await staging(true)
      .release('s1', 'save')
      .catch(() => {});
    expect(existsSync(join(app, 's1'))).toBe(false);
    expect(read(shared, 's1', 'events.jsonl')).toBe('written by the newer holder\n');
  });

  it('reads the owner from the shared copy without staging it, and whether it has history', async () => {
    saved(shared, 's1', 'h\n', 'bob');
    const s = staging();
    expect(await s.sharedMetadata('s1')).toEqual({ 'sessionfleet/owner': 'bob' });
    expect(await s.sharedMetadata('nothing')).toBeUndefined();
    expect(await s.sharedWithHistory('s1')).toBe(true);
    expect(await s.sharedWithHistory('nothing')).toBe(false);
    expect(existsSync(join(app, 's1'))).toBe(false);
  });

  it('lists the sessions saved with history on the shared volume, with their metadata and workspace fields', async () => {
    saved(shared, 's1', 'h\n', 'bob');
    writeFileSync(
      join(shared, 's1', 'workspace.yaml'),
      'id: s1\ncwd: /home/bob\nname: "first prompt"\ncreated_at: 2026-12-04T17:00:42.640Z\n',
    );
    saved(shared, 'empty', '');
    mkdirSync(join(shared, '.s1.incoming-abc'));
    const listed = await staging().sharedSessions();
    expect(listed.map((s) => s.sessionId)).toEqual(['s1']);
    expect(listed[0]).toMatchObject({
      metadata: { 'sessionfleet/owner': 'bob' },
      workspace: { id: 's1', cwd: '/home/bob', name: 'first prompt', created_at: '2026-12-04T17:00:42.640Z' },
    });
  });

  it('refuses an id that would name a hidden directory, where its own swap files live', async () => {
    const error = await staging()
      .stageIn('.s1.incoming-x')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentError);
    expect((error as AgentError).code).toBe('INVALID_SESSION_ID');
    expect((error as Error).message).toBe(
      'session id ".s1.incoming-x" cannot be staged: with --app-state-dir a session id must not start with "."',
    );
  });

  it("lists the sessions left in the app's directory (not the CLI's own hidden entries)", async () => {
    saved(app, 's1', 'x\n');
    saved(app, 's2', 'x\n');
    mkdirSync(join(app, '.session-operation-locks'));
    expect((await staging().appSessions()).sort()).toEqual(['s1', 's2']);
  });
});
