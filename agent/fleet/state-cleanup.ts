/**
 * Periodic cleanup of session-state directories on the shared volume (SPEC.md §5 production
 * checklist): `<dir>/<sessionId>/` is removed when nothing in it changed for longer than the
 * session lifetime AND the session is not live anywhere in the fleet. The coordinator runs it on
 * the janitor leader only, so two agents never race over one volume.
 *
 * Careful by construction: only direct children of `dir` whose name is a valid session id; symbolic
 * links are never followed (a link's own time counts, its target is never touched); the newest
 * time inside a directory counts, not the directory's own (which changes only when entries come and
 * go); a directory too large to scan within the bound is kept; if liveness cannot be checked
 * (Redis away) nothing is removed; and each directory's time is checked again right before removal.
 */
import type { Dirent } from 'node:fs';
import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

export interface StateCleanupOptions {
  dir: string;
  /** Directories unchanged for this long are candidates (the policy's session lifetime). */
  maxAgeMs: number;
  /** The ids among `ids` that are live (registry or local table). May throw: then nothing is removed. */
  isLive(ids: string[]): Promise<Set<string>>;
  now?: () => number;
  /** Entries examined per directory before giving up on it (it is kept). @default 10000 */
  maxEntriesPerDir?: number;
}

export interface StateCleanupReport {
  scanned: number;
  removed: string[];
  keptLive: string[];
  keptRecent: number;
  /** Not a directory, not a session id, a symbolic link, or too large to scan. */
  skipped: string[];
}

const SESSION_ID = /^[\x21-\x7e]{1,256}$/;

/** The newest modification time in a tree, or undefined if it has more than `budget` entries. */
async function newestTime(path: string, budget: { left: number }): Promise<number | undefined> {
  const stat = await lstat(path);
  let newest = stat.mtimeMs;
  if (!stat.isDirectory()) return newest;
  let entries: Dirent[];
  try {
    entries = await readdir(path, { withFileTypes: true });
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    if (--budget.left < 0) return undefined;
    const child = join(path, entry.name);
    const t = entry.isDirectory() ? await newestTime(child, budget) : (await lstat(child)).mtimeMs;
    if (t === undefined) return undefined;
    newest = Math.max(newest, t);
  }
  return newest;
}

export async function cleanSessionState(options: StateCleanupOptions): Promise<StateCleanupReport> {
  const now = options.now ?? Date.now;
  const report: StateCleanupReport = { scanned: 0, removed: [], keptLive: [], keptRecent: 0, skipped: [] };
  let entries: Dirent[];
  try {
    entries = await readdir(options.dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return report;
    throw error;
  }
  const old: string[] = [];
  for (const entry of entries) {
    report.scanned++;
    if (!entry.isDirectory() || entry.isSymbolicLink() || !SESSION_ID.test(entry.name)) {
      report.skipped.push(entry.name);
      continue;
    }
    const newest = await newestTime(join(options.dir, entry.name), {
      left: options.maxEntriesPerDir ?? 10_000,
    }).catch(() => undefined);
    if (newest === undefined) report.skipped.push(entry.name);
    else if (now() - newest >= options.maxAgeMs) old.push(entry.name);
    else report.keptRecent++;
  }
  if (old.length === 0) return report;
  const live = await options.isLive(old);
  for (const id of old) {
    if (live.has(id)) {
      report.keptLive.push(id);
      continue;
    }
    const path = join(options.dir, id);
    // Something may have written there since the scan (a session resumed): look once more.
    const newest = await newestTime(path, { left: options.maxEntriesPerDir ?? 10_000 }).catch(() => undefined);
    if (newest === undefined || now() - newest < options.maxAgeMs) {
      report.keptRecent++;
      continue;
    }
    await rm(path, { recursive: true, force: true });
    report.removed.push(id);
  }
  return report;
}
