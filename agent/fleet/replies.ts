/**
 * What each fleet script answers, and the one decoder that reads it. A Lua reply is a flat array
 * whose layout is documented above the script (`lua/`); reading it by index in more than one place
 * is how a reordered field goes unnoticed, so every reply is turned into a typed value here and
 * nowhere else. A reply that does not match its script's layout (another version's script, a
 * wrong command) throws `ScriptReplyError` naming the script and what was wrong, rather than being
 * read as some other outcome.
 */
import type { EndReason } from '../core/sessions.js';

/**
 * Why a session ended, as the fleet remembers it: the owner's own reason, or `owner-lost` when it
 * ended because its owner died (or restarted) without it and it could not be resumed elsewhere.
 */
export type EndedReason = EndReason | 'owner-lost';

const ENDED_REASONS: ReadonlySet<string> = new Set<EndedReason>([
  'deleted',
  'expired-lifetime',
  'expired-idle',
  'evicted',
  'terminated',
  'drained',
  'upstream-closed',
  'detached',
  'owner-lost',
]);

/** A reason read back from Redis; anything unexpected (another version's) reads as `deleted`. */
export function endedReason(value: unknown): EndedReason {
  const text = typeof value === 'string' ? value : String(value ?? '');
  return ENDED_REASONS.has(text) ? (text as EndedReason) : 'deleted';
}

/** A session as the registry records it. */
export interface SessionRecord {
  readonly id: string;
  /** The instance that holds it; undefined while it waits to be resumed (handed off). */
  readonly owner: string | undefined;
  readonly principal: string | undefined;
  readonly tenant: string | undefined;
  readonly createdAt: number;
  readonly expiresAt: number;
  /** Its state is on shared storage: another instance can resume it. */
  readonly resumable: boolean;
  /**
   * Where the session lives on the owner's upstream (the MCP endpoint path), when the front said;
   * the owner's reconcile after a restart asks the upstream there (ADR 0022).
   */
  readonly upstreamPath?: string;
}

export interface InstanceView {
  readonly id: string;
  readonly address: string;
  /** Slots offered (0 while draining). */
  readonly capacity: number;
  /** Slots in use: sessions plus reservations. */
  readonly used: number;
  readonly leaseDeadline: number;
}

/** An instance of the fleet as every agent mirrors it: where its peers reach it. */
export interface FleetMember {
  readonly id: string;
  readonly address: string;
}

export interface HeartbeatResult {
  /** The lease deadline before this renewal; undefined if the instance was not registered. */
  readonly previousDeadline: number | undefined;
  /** The Redis clock. */
  readonly now: number;
  readonly demand: number;
  /** Live instances (what counts against maxInstances). */
  readonly running: number;
  /** The membership log's epoch and version this reply brings the agent to. */
  readonly epoch: string;
  readonly version: number;
  /**
   * `full`: `members` is every live member (replace the mirror); `delta`: the members that joined,
   * moved or left since the agent's version (`gone` ones leave the mirror).
   */
  readonly mode: 'full' | 'delta';
  readonly members: Array<FleetMember & { readonly gone: boolean }>;
}

export type PlaceResult =
  | { kind: 'placed'; instanceId: string; address: string }
  /** The client-chosen id ended within the last lifetime: not a new session. */
  | { kind: 'ended'; reason: EndedReason }
  | { kind: 'quota'; quota: 'principal' | 'tenant'; held: number }
  | { kind: 'full'; canGrow: boolean; running: number; demand: number };

export type OpenResult =
  | { ok: true }
  | { ok: false; ended: EndedReason }
  | {
      ok: false;
      ended?: undefined;
      owner: string | undefined;
      principal: string | undefined;
      tenant: string | undefined;
    };

export type EndResult =
  | { kind: 'ended' }
  | { kind: 'handed-off' }
  | { kind: 'unknown' }
  | { kind: 'not-owner'; owner: string | undefined };

export type ResolveResult =
  | { kind: 'owned'; instanceId: string; address: string; record: SessionRecord }
  | { kind: 'moved'; instanceId: string; address: string; record: SessionRecord }
  /** Ended: just now in the lookup (timed out, lost with its owner) or earlier (remembered). */
  | { kind: 'gone'; reason: EndedReason }
  | { kind: 'unknown' }
  | { kind: 'full'; canGrow: boolean };

export interface ResyncResult {
  registered: number;
  kept: number;
  released: number;
  /** Sessions this instance holds but the registry gives to another instance. */
  conflicts: Array<{ id: string; owner: string }>;
}

export interface SweepResult {
  reservationsReclaimed: number;
  expired: number;
  handedOff: number;
  dropped: number;
  instancesRemoved: number;
  waitersExpired: number;
  /** Ended ids forgotten, their lifetime over. */
  endedForgotten: number;
}

/** One acquire attempt: granted with a fencing token, or not, with the holder's time left and our place. */
export type LockAttempt =
  | { granted: true; token: number }
  /** `remainingMs`: the holder's PTTL (-2 when free); `position`: our place in line (-1 not queued). */
  | { granted: false; remainingMs: number; position: number };

export class ScriptReplyError extends Error {
  constructor(
    readonly script: string,
    why: string,
    readonly reply: unknown,
  ) {
    super(`unexpected reply from ${script}: ${why} (${JSON.stringify(reply)?.slice(0, 200)})`);
    this.name = 'ScriptReplyError';
  }
}

const str = (v: unknown): string => (typeof v === 'string' ? v : String(v ?? ''));
/** '' is how the scripts say "none". */
const named = (v: unknown): string | undefined => (str(v) === '' ? undefined : str(v));

function number(script: string, v: unknown): number {
  const n = Number(v);
  if (v === null || v === undefined || Number.isNaN(n)) throw new ScriptReplyError(script, 'expected a number', v);
  return n;
}

function array(script: string, reply: unknown, min: number): unknown[] {
  if (!Array.isArray(reply) || reply.length < min)
    throw new ScriptReplyError(script, `expected an array of at least ${min}`, reply);
  return reply;
}

/** The 1/0 integer replies of the scripts that only say whether they did it. */
function flag(script: string, reply: unknown): boolean {
  const n = number(script, reply);
  if (n !== 0 && n !== 1) throw new ScriptReplyError(script, 'expected 0 or 1', reply);
  return n === 1;
}

interface RawRecord {
  o: string;
  p: string;
  t: string;
  c: number;
  e: number;
  r: number;
  u?: string;
}

/** A record as the scripts store it (`HGET sessions id`, and inside resolve's reply). */
export function decodeRecord(id: string, raw: string): SessionRecord {
  const r = JSON.parse(raw) as RawRecord;
  return {
    id,
    owner: r.o === '' ? undefined : r.o,
    principal: r.p === '' ? undefined : r.p,
    tenant: r.t === '' ? undefined : r.t,
    createdAt: Number(r.c),
    expiresAt: Number(r.e),
    resumable: Number(r.r) === 1,
    ...(typeof r.u === 'string' && r.u !== '' ? { upstreamPath: r.u } : {}),
  };
}

/** sfHeartbeat: {previous deadline or -1, now, demand, running, epoch, version, mode, then per member: id, address, 1 live / 0 gone}. */
export function decodeHeartbeat(reply: unknown): HeartbeatResult {
  const s = 'sfHeartbeat';
  const out = array(s, reply, 7);
  if ((out.length - 7) % 3 !== 0) throw new ScriptReplyError(s, 'members come in threes', reply);
  const mode = str(out[6]);
  if (mode !== 'full' && mode !== 'delta') throw new ScriptReplyError(s, 'unknown mode', reply);
  const members: HeartbeatResult['members'] = [];
  for (let i = 7; i + 2 < out.length; i += 3) {
    members.push({ id: str(out[i]), address: str(out[i + 1]), gone: number(s, out[i + 2]) === 0 });
  }
  const previous = number(s, out[0]);
  return {
    previousDeadline: previous < 0 ? undefined : previous,
    now: number(s, out[1]),
    demand: number(s, out[2]),
    running: number(s, out[3]),
    epoch: str(out[4]),
    version: number(s, out[5]),
    mode,
    members,
  };
}

/** sfPlace: {'placed', instance, address} | {'ended', why} | {'quota', which, held} | {'full', can grow, running, demand}. */
export function decodePlace(reply: unknown): PlaceResult {
  const s = 'sfPlace';
  const out = array(s, reply, 1);
  switch (str(out[0])) {
    case 'placed':
      return { kind: 'placed', instanceId: str(out[1]), address: str(out[2]) };
    case 'ended':
      return { kind: 'ended', reason: endedReason(out[1]) };
    case 'quota':
      return { kind: 'quota', quota: str(out[1]) === 'tenant' ? 'tenant' : 'principal', held: number(s, out[2]) };
    case 'full':
      return {
        kind: 'full',
        canGrow: number(s, out[1]) === 1,
        running: number(s, out[2]),
        demand: number(s, out[3]),
      };
    default:
      throw new ScriptReplyError(s, 'unknown outcome', reply);
  }
}

/** sfLeave: 1 if the instance was registered. */
export function decodeLeave(reply: unknown): boolean {
  return flag('sfLeave', reply);
}

/** sfCancel: 1 if the reservation was still there. */
export function decodeCancel(reply: unknown): boolean {
  return flag('sfCancel', reply);
}

/** sfOpen: {'ok'} | {'exists', owner, principal, tenant} | {'ended', why}. */
export function decodeOpen(reply: unknown): OpenResult {
  const s = 'sfOpen';
  const out = array(s, reply, 1);
  switch (str(out[0])) {
    case 'ok':
      return { ok: true };
    case 'ended':
      return { ok: false, ended: endedReason(out[1]) };
    case 'exists':
      return { ok: false, owner: named(out[1]), principal: named(out[2]), tenant: named(out[3]) };
    default:
      throw new ScriptReplyError(s, 'unknown outcome', reply);
  }
}

/** sfEnd: {'ended'} | {'handed-off'} | {'unknown'} | {'not-owner', owner}. */
export function decodeEnd(reply: unknown): EndResult {
  const s = 'sfEnd';
  const out = array(s, reply, 1);
  const kind = str(out[0]);
  if (kind === 'not-owner') return { kind, owner: named(out[1]) };
  if (kind === 'ended' || kind === 'handed-off' || kind === 'unknown') return { kind };
  throw new ScriptReplyError(s, 'unknown outcome', reply);
}

/** sfResolve: {'owned'|'moved', instance, address, record} | {'gone', why} | {'unknown'} | {'full', can grow}. */
export function decodeResolve(id: string, reply: unknown): ResolveResult {
  const s = 'sfResolve';
  const out = array(s, reply, 1);
  const kind = str(out[0]);
  switch (kind) {
    case 'owned':
    case 'moved':
      return { kind, instanceId: str(out[1]), address: str(out[2]), record: decodeRecord(id, str(out[3])) };
    case 'gone':
      return { kind, reason: endedReason(out[1]) };
    case 'full':
      return { kind, canGrow: number(s, out[1]) === 1 };
    case 'unknown':
      return { kind };
    default:
      throw new ScriptReplyError(s, 'unknown outcome', reply);
  }
}

/** sfResync: {registered, kept, released, then per conflict: id, owner}. */
export function decodeResync(reply: unknown): ResyncResult {
  const s = 'sfResync';
  const out = array(s, reply, 3);
  if ((out.length - 3) % 2 !== 0) throw new ScriptReplyError(s, 'conflicts come in pairs', reply);
  const conflicts: Array<{ id: string; owner: string }> = [];
  for (let i = 3; i + 1 < out.length; i += 2) conflicts.push({ id: str(out[i]), owner: str(out[i + 1]) });
  return { registered: number(s, out[0]), kept: number(s, out[1]), released: number(s, out[2]), conflicts };
}

/** sfSweep: {reclaimed, expired, handed off, dropped, instances removed, waiters expired, ended forgotten}. */
export function decodeSweep(reply: unknown): SweepResult {
  const s = 'sfSweep';
  const out = array(s, reply, 7);
  const n = (i: number) => number(s, out[i]);
  return {
    reservationsReclaimed: n(0),
    expired: n(1),
    handedOff: n(2),
    dropped: n(3),
    instancesRemoved: n(4),
    waitersExpired: n(5),
    endedForgotten: n(6),
  };
}

/** sfScaleGauge: {demand, previous length of the scale list}. */
export function decodeScaleGauge(reply: unknown): { demand: number; previous: number } {
  const s = 'sfScaleGauge';
  const out = array(s, reply, 2);
  return { demand: number(s, out[0]), previous: number(s, out[1]) };
}

/** sfLockAcquire: {1, token, 0} when granted; {0, holder's remaining ms (-2 free), position (-1 not queued)}. */
export function decodeLockAcquire(reply: unknown): LockAttempt {
  const s = 'sfLockAcquire';
  const out = array(s, reply, 3);
  const granted = flag(s, out[0]);
  return granted
    ? { granted, token: number(s, out[1]) }
    : { granted, remainingMs: number(s, out[1]), position: number(s, out[2]) };
}

/** sfLockRelease: 1 if released, 0 if the lock was no longer ours. */
export function decodeLockRelease(reply: unknown): boolean {
  return flag('sfLockRelease', reply);
}

/** sfLockExtend: 1 if renewed, 0 if the lock was lost. */
export function decodeLockExtend(reply: unknown): boolean {
  return flag('sfLockExtend', reply);
}

/** sfLockLeave: 1 if the waiter was queued. */
export function decodeLockLeave(reply: unknown): boolean {
  return flag('sfLockLeave', reply);
}
