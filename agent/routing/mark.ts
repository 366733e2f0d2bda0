/**
 * The one signed agent-to-agent mark: "already placed and routed by instance X". An agent that
 * receives a verified mark serves the request itself (or refuses it), never forwards it again, and
 * honours the reservation it carries. A client cannot forge one without the fleet key
 * (`OwnerHints`); a mark is bound to both instances and expires after `MARK_MAX_AGE_MS`.
 *
 * One codec, two wire forms, kept as they were so that agents of two versions still understand
 * each other during a rolling upgrade:
 * - HTTP (`http-forward`): the `x-sessionfleet-forwarded-by` header, `v1 <from> <to> <at> <reservation or -> <mac>`;
 *   the reservation is signed with the rest (a request carries its own).
 * - Copilot (`copilot-hop`): an object `{from, to, at, mac}` in the hop's `connect` params; the
 *   hop connection is long-lived, so each forwarded request carries its reservation beside it.
 */
import type { OwnerHints } from '../fleet/types.js';

export type MarkPurpose = 'http-forward' | 'copilot-hop';

/** How long a mark is valid after it was signed (clock skew between agents included). */
export const MARK_MAX_AGE_MS = 60_000;

/** A mark's fields. `reservation` is signed only by the `http-forward` form. */
export interface AgentMark {
  readonly from: string;
  readonly to: string;
  readonly at: number;
  readonly reservation?: string | undefined;
  readonly mac: string;
}

/** What a verified mark tells the receiving agent. */
export interface VerifiedMark {
  /** The forwarding instance. */
  readonly from: string;
  /** The slot reserved on the receiving instance for a new session, if any. */
  readonly reservation: string | undefined;
}

export type MarkCheck<T> = { ok: true; mark: T } | { ok: false; reason: string };

const FIELD = /^[A-Za-z0-9._~-]{1,128}$/;

/** What each purpose signs, and how its refusals name it (operators grep the logs for these). */
const FORMS: Readonly<Record<MarkPurpose, { noun: string; text(m: Omit<AgentMark, 'mac'>): string }>> = {
  'http-forward': {
    noun: 'forwarding mark',
    text: (m) => `${m.from}\0${m.to}\0${m.at}\0${m.reservation ?? '-'}`,
  },
  'copilot-hop': {
    noun: 'agent-to-agent mark',
    text: (m) => `${m.from}\0${m.to}\0${m.at}`,
  },
};

export function signMark(
  hints: OwnerHints,
  purpose: MarkPurpose,
  fields: { from: string; to: string; reservation?: string | undefined },
  now = Date.now(),
): AgentMark {
  const unsigned = { from: fields.from, to: fields.to, at: now, reservation: fields.reservation };
  return { ...unsigned, mac: hints.sign(purpose, FORMS[purpose].text(unsigned)) };
}

/** The mark's meaning, if `mark` is a valid mark of `purpose` addressed to `self`; otherwise why not. */
export function verifyMark(
  hints: OwnerHints | undefined,
  purpose: MarkPurpose,
  self: string,
  mark: AgentMark | undefined,
  now = Date.now(),
): MarkCheck<VerifiedMark> {
  const { noun, text } = FORMS[purpose];
  if (!hints) return { ok: false, reason: 'this agent has no fleet key yet' };
  if (!mark) return { ok: false, reason: `malformed ${noun}` };
  if (mark.to !== self) return { ok: false, reason: `${noun} addressed to another instance` };
  if (Math.abs(now - mark.at) > MARK_MAX_AGE_MS) return { ok: false, reason: `${noun} expired` };
  if (!hints.verify(purpose, text(mark), mark.mac)) return { ok: false, reason: `${noun} with a bad signature` };
  return { ok: true, mark: { from: mark.from, reservation: mark.reservation } };
}

/** The header form: `v1 <from> <to> <at> <reservation or -> <mac>`. */
export function markToHeader(mark: AgentMark): string {
  return `v1 ${mark.from} ${mark.to} ${mark.at} ${mark.reservation ?? '-'} ${mark.mac}`;
}

/** Parses the header form; undefined when malformed. */
export function markFromHeader(value: string | string[] | undefined): AgentMark | undefined {
  if (typeof value !== 'string') return undefined;
  const parts = value.split(' ');
  if (parts.length !== 6 || parts[0] !== 'v1') return undefined;
  const [, from, to, atText, r, mac] = parts as [string, string, string, string, string, string];
  const at = Number(atText);
  if (!FIELD.test(from) || !FIELD.test(to) || !FIELD.test(r) || !Number.isSafeInteger(at)) return undefined;
  return { from, to, at, reservation: r === '-' ? undefined : r, mac };
}

/** Parses the object form (Copilot `connect` params); undefined when malformed. */
export function markFromObject(value: unknown): AgentMark | undefined {
  const m = value as Partial<AgentMark> | null;
  if (
    typeof m !== 'object' ||
    m === null ||
    typeof m.from !== 'string' ||
    typeof m.to !== 'string' ||
    typeof m.at !== 'number' ||
    typeof m.mac !== 'string'
  )
    return undefined;
  return { from: m.from, to: m.to, at: m.at, mac: m.mac };
}

/** The object form (Copilot `connect` params): the reservation travels per request, not here. */
export function markToObject(mark: AgentMark): { from: string; to: string; at: number; mac: string } {
  return { from: mark.from, to: mark.to, at: mark.at, mac: mark.mac };
}

// The two forms under the names their fronts have used (tests and the Copilot hop call these).

export const FORWARD_MARK_MAX_AGE_MS = MARK_MAX_AGE_MS;
export const HOP_MARK_MAX_AGE_MS = MARK_MAX_AGE_MS;

export type ForwardMark = VerifiedMark;
export type HopMark = ReturnType<typeof markToObject>;

export function signForwardMark(
  hints: OwnerHints,
  from: string,
  to: string,
  reservation: string | undefined,
  now = Date.now(),
): string {
  return markToHeader(signMark(hints, 'http-forward', { from, to, reservation }, now));
}

/** The forwarding instance and its reservation, if `value` is a valid header mark addressed to `self`. */
export function verifyForwardMark(
  hints: OwnerHints | undefined,
  self: string,
  value: string | string[] | undefined,
  now = Date.now(),
): MarkCheck<ForwardMark> {
  if (!hints) return { ok: false, reason: 'this agent has no fleet key yet' };
  return verifyMark(hints, 'http-forward', self, markFromHeader(value), now);
}

export function signHopMark(hints: OwnerHints, from: string, to: string, now = Date.now()): HopMark {
  return markToObject(signMark(hints, 'copilot-hop', { from, to }, now));
}

/** The forwarding instance, if `value` is a valid object mark addressed to `self`; otherwise why not. */
export function verifyHopMark(
  hints: OwnerHints | undefined,
  self: string,
  value: unknown,
  now = Date.now(),
): { ok: true; from: string } | { ok: false; reason: string } {
  if (!hints) return { ok: false, reason: 'this agent has no fleet key yet' };
  const checked = verifyMark(hints, 'copilot-hop', self, markFromObject(value), now);
  return checked.ok ? { ok: true, from: checked.mark.from } : checked;
}
