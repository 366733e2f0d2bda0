/**
 * Session-state staging (ADR 0019, SPEC.md §7): the fleet's shared session-state volume is mounted
 * into the agent only; the app (the Copilot CLI) sees a private directory of its own instance. The
 * agent copies a session's directory from the shared volume into the private one before the app
 * loads it, copies it back when a turn ends and when the session leaves this instance, and then
 * removes the private copy — so an app only ever holds the state of sessions it is serving, and
 * whatever runs inside it (a shell command, a file read, the model's own tools) finds nothing else.
 *
 * Writes to the shared copy happen under the session's lock and are fenced: each write-back
 * records the lock's fencing token beside the state (`FENCE_FILE`), and a write-back holding an
 * older token than the one recorded is refused — a holder that stalled past its lock's TTL while
 * another instance took the session over never overwrites the newer state. A write-back replaces
 * the shared directory by rename, never file by file, so a reader sees the old or the new copy.
 */
import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { chmod, cp, lstat, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { AgentError } from './errors.js';
import { isValidSessionId } from './session-id.js';

/** What the staging needs of the session lock (`agent/fleet/lock.ts`): acquire, a token, release. */
export interface StagingLock {
  acquire(
    resource: string,
    options?: { waitMs?: number },
  ): Promise<{ readonly token: number; release(): Promise<boolean> }>;
}

export interface StateStagingOptions {
  /** The shared session-state directory (`--session-state-dir`), reachable by the agent only. */
  sharedDir: string;
  /** The app's private session-state directory (`--app-state-dir`), shared by agent and app. */
  appDir: string;
  lock: StagingLock;
  /**
   * Whether fencing tokens are comparable across instances and restarts (the Redis lock's fleet
   * counter). The in-process lock's counter starts again at every start, so its tokens are not
   * compared with one recorded earlier.
   */
  fleetWideTokens: boolean;
  /** How long a write-back waits for the session's lock. @default 10000 */
  lockWaitMs?: number;
}

/** The file beside a session's shared state that records the fencing token of its last write-back. */
export const FENCE_FILE = '.sessionfleet-fence';

/** Files the CLI holds open while a session is loaded: process-local, never copied between instances. */
const PROCESS_LOCAL = /^inuse\.\d+\.(hold|lock)$/;

export class StaleWriteError extends Error {
  constructor(
    readonly sessionId: string,
    readonly token: number,
    readonly recorded: number,
  ) {
    super(
      `session ${JSON.stringify(sessionId)}: write-back with fencing token ${token} refused, the shared state was written under token ${recorded}`,
    );
    this.name = 'StaleWriteError';
  }
}

export type StagedOwner = Record<string, unknown> | undefined;

/** A session saved on the shared volume, as `session.list` describes one (read from its files). */
export interface SharedSession {
  readonly sessionId: string;
  /** Its client metadata (where the owner is recorded). */
  readonly metadata: Record<string, unknown>;
  /** Top-level scalar fields of its `workspace.yaml` (`created_at`, `updated_at`, `summary`, `cwd`…). */
  readonly workspace: Record<string, string>;
  readonly modifiedMs: number;
}

export class StateStaging {
  private readonly lockWaitMs: number;
  /** One chain of staging work per session: a write-back never overlaps a stage-in or another write-back. */
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(private readonly options: StateStagingOptions) {
    this.lockWaitMs = options.lockWaitMs ?? 10_000;
  }

  get sharedDir(): string {
    return this.options.sharedDir;
  }

  get appDir(): string {
    return this.options.appDir;
  }

  /**
   * Copies the session's shared state into the app's directory, replacing any stale private copy.
   * Resolves false when the shared volume has no state for it (a new session). Call it only after
   * the caller was authorized for the session: the copy is what the app may read.
   */
  stageIn(sessionId: string): Promise<boolean> {
    return this.serialized(sessionId, async () => {
      const from = this.sharedPath(sessionId);
      if (!(await isDirectory(from))) return false;
      const to = this.appPath(sessionId);
      await rm(to, { recursive: true, force: true });
      await cp(from, to, { recursive: true, filter: (source) => keep(source) });
      // The app runs as another user in the agent's group (the constructs' fsGroup): it must write
      // to, and the agent later remove, what the agent copied in.
      await groupWritable(to);
      return true;
    });
  }

  /**
   * Copies the app's private copy back to the shared volume under the session's lock, fenced.
   * Resolves false when the app holds no copy (nothing was ever saved). Throws `StaleWriteError`
   * when a newer holder wrote the shared state meanwhile.
   */
  writeBack(sessionId: string): Promise<boolean> {
    return this.serialized(sessionId, () => this.writeBackNow(sessionId));
  }

  /**
   * The session leaves this instance (detached, expired, drained, handed off): its state is written
   * back, then the private copy is removed. `deleted`: the session is gone for good — both copies
   * are removed (under the lock), so nobody can resume it anywhere.
   */
  release(sessionId: string, how: 'save' | 'delete'): Promise<void> {
    return this.serialized(sessionId, async () => {
      try {
        if (how === 'save') await this.writeBackNow(sessionId);
        else await this.underLock(sessionId, () => rm(this.sharedPath(sessionId), { recursive: true, force: true }));
      } finally {
        await this.clearApp(sessionId);
      }
    });
  }

  /**
   * Removes the app's private copy of one session (and the CLI's lock file for it). Fails with a
   * message naming the fix when the app wrote it without group write permission.
   */
  async clearApp(sessionId: string): Promise<void> {
    try {
      await rm(this.appPath(sessionId), { recursive: true, force: true });
      await rm(join(this.options.appDir, '.session-operation-locks', `${sessionId}.lock`), { force: true });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EACCES' && code !== 'EPERM') throw error;
      throw new Error(
        `cannot remove the app's copy of session ${JSON.stringify(sessionId)} from --app-state-dir (${code}): run the app with umask 002 or as the agent's user, so the agent may remove what the app writes`,
      );
    }
  }

  /** Session ids the app's directory holds a copy of (leftovers after a crash, before serving). */
  async appSessions(): Promise<string[]> {
    try {
      const entries = await readdir(this.options.appDir, { withFileTypes: true });
      return entries
        .filter((e) => e.isDirectory() && isValidSessionId(e.name) && !e.name.startsWith('.'))
        .map((e) => e.name);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  /**
   * The client metadata the CLI saved with the session on the shared volume (where the owner is
   * recorded), read by the agent without staging anything in: undefined when the shared volume has
   * no state for it; an empty object when it has state but no metadata.
   */
  async sharedMetadata(sessionId: string): Promise<StagedOwner> {
    const dir = this.sharedPath(sessionId);
    if (!(await isDirectory(dir))) return undefined;
    try {
      const parsed = JSON.parse(await readFile(join(dir, 'client-metadata.json'), 'utf8')) as { metadata?: unknown };
      const metadata = parsed?.metadata;
      return metadata !== null && typeof metadata === 'object' ? (metadata as Record<string, unknown>) : {};
    } catch {
      return {};
    }
  }

  /**
   * The sessions saved with history on the shared volume: what the CLI would list if it saw the
   * volume. Reads every session's small metadata files, so it costs one pass over the volume.
   */
  async sharedSessions(): Promise<SharedSession[]> {
    let entries: Dirent[];
    try {
      entries = await readdir(this.options.sharedDir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const found: SharedSession[] = [];
    for (const entry of entries) {
      if (!entry.isDirectory() || entry.name.startsWith('.') || !isValidSessionId(entry.name)) continue;
      const dir = join(this.options.sharedDir, entry.name);
      try {
        const events = await stat(join(dir, 'events.jsonl'));
        if (events.size === 0) continue;
        const metadata = (await this.sharedMetadata(entry.name)) ?? {};
        const workspace = parseScalars(await readFile(join(dir, 'workspace.yaml'), 'utf8').catch(() => ''));
        found.push({ sessionId: entry.name, metadata, workspace, modifiedMs: events.mtimeMs });
      } catch {
        // Removed meanwhile (cleanup, delete) or never saved: not listed.
      }
    }
    return found;
  }

  /** Whether the shared volume holds the session with history (a saved event log). */
  async sharedWithHistory(sessionId: string): Promise<boolean> {
    try {
      return (await stat(join(this.sharedPath(sessionId), 'events.jsonl'))).size > 0;
    } catch {
      return false;
    }
  }

  /** Resolves once every staging operation started so far has settled. */
  async settled(): Promise<void> {
    while (this.chains.size > 0) await Promise.allSettled([...this.chains.values()]);
  }

  private async writeBackNow(sessionId: string): Promise<boolean> {
    const from = this.appPath(sessionId);
    if (!(await isDirectory(from))) return false;
    await this.underLock(sessionId, async (token) => {
      const to = this.sharedPath(sessionId);
      if (this.options.fleetWideTokens) {
        const recorded = await readFence(to);
        if (recorded > token) throw new StaleWriteError(sessionId, token, recorded);
      }
      // Copied beside the target, then swapped in by two renames: never a half-written directory.
      const suffix = randomBytes(6).toString('hex');
      const incoming = join(this.options.sharedDir, `.${sessionId}.incoming-${suffix}`);
      const outgoing = join(this.options.sharedDir, `.${sessionId}.outgoing-${suffix}`);
      try {
        await cp(from, incoming, { recursive: true, filter: (source) => keep(source) });
        await writeFile(join(incoming, FENCE_FILE), String(token));
        const existed = await isDirectory(to);
        if (existed) await rename(to, outgoing);
        await rename(incoming, to);
      } finally {
        await rm(incoming, { recursive: true, force: true });
        await rm(outgoing, { recursive: true, force: true });
      }
    });
    return true;
  }

  private async underLock<T>(sessionId: string, work: (token: number) => Promise<T>): Promise<T> {
    const lease = await this.options.lock.acquire(sessionId, { waitMs: this.lockWaitMs });
    try {
      return await work(lease.token);
    } finally {
      await lease.release().catch(() => false);
    }
  }

  private serialized<T>(sessionId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(sessionId) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    const tail = next.catch(() => undefined);
    this.chains.set(sessionId, tail);
    void tail.then(() => {
      if (this.chains.get(sessionId) === tail) this.chains.delete(sessionId);
    });
    return next;
  }

  private sharedPath(sessionId: string): string {
    return join(this.options.sharedDir, checked(sessionId));
  }

  private appPath(sessionId: string): string {
    return join(this.options.appDir, checked(sessionId));
  }
}

/** Ids reach here validated by both fronts; checked again because they become paths. */
function checked(sessionId: string): string {
  if (!isValidSessionId(sessionId) || sessionId.startsWith('.')) {
    throw new AgentError(
      'INVALID_SESSION_ID',
      `session id ${JSON.stringify(sessionId)} cannot be staged: with --app-state-dir a session id must not start with "."`,
      { details: { sessionId } },
    );
  }
  return sessionId;
}

function keep(source: string): boolean {
  const name = basename(source);
  return !PROCESS_LOCAL.test(name) && name !== FENCE_FILE;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    const s = await lstat(path);
    return s.isDirectory();
  } catch {
    return false;
  }
}

/** `key: value` lines at the top level of a YAML file (the CLI's `workspace.yaml` is flat). */
function parseScalars(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*):\s*(.*)$/.exec(line);
    if (!match) continue;
    let value = match[2]!.trim();
    if (/^(['"]).*\1$/.test(value)) value = value.slice(1, -1);
    fields[match[1]!] = value;
  }
  return fields;
}

async function groupWritable(path: string): Promise<void> {
  const s = await lstat(path);
  if (s.isSymbolicLink()) return;
  await chmod(path, (s.mode & 0o7777) | (s.isDirectory() ? 0o070 : 0o060));
  if (!s.isDirectory()) return;
  for (const entry of await readdir(path)) await groupWritable(join(path, entry));
}

async function readFence(dir: string): Promise<number> {
  try {
    const value = Number((await readFile(join(dir, FENCE_FILE), 'utf8')).trim());
    return Number.isSafeInteger(value) ? value : 0;
  } catch {
    return 0;
  }
}
