/**
 * The HTTP front in a fleet (`--redis`): the signed mark of an agent-to-agent forward and the
 * connection pools to the other agents.
 *
 * A request (or WebSocket upgrade) for a session held elsewhere, or a new session placed
 * elsewhere, is proxied to the owner agent's `--advertise` address with
 * `x-sessionfleet-forwarded-by: <mark>`. The mark names both instances, the time, and the
 * reservation the forwarding agent's `place()` took on the owner, all signed with the fleet key
 * (`OwnerHints.sign`, purpose `http-forward`), and is valid for `FORWARD_MARK_MAX_AGE_MS`. The
 * owner serves a marked request itself and never forwards it again. A client cannot forge a
 * mark without the fleet key: an invalid one is ignored (the header never reaches the upstream)
 * and the request is placed and routed like any other.
 */
import { Pool } from 'undici';
import type { OwnerHints } from '../fleet/owner-hint.js';
import { FLEET_HEADERS } from '../fleet/types.js';

const FORWARD_PURPOSE = 'http-forward';
export const FORWARD_MARK_MAX_AGE_MS = 60_000;
/** Set by an owner on the answer to a marked request for a session it does not hold. */
export const NOT_OWNER_HEADER = 'x-sessionfleet-not-owner';
export const FORWARDED_BY_HEADER = FLEET_HEADERS.forwardedBy;
const FIELD = /^[A-Za-z0-9._~-]{1,128}$/;

export interface ForwardMark {
  from: string;
  /** The slot reserved on the receiving instance for a new session. */
  reservation: string | undefined;
}

const markText = (from: string, to: string, at: number, reservation: string) => `${from}\0${to}\0${at}\0${reservation}`;

/** `v1 <from> <to> <at> <reservation or -> <mac>` */
export function signForwardMark(
  hints: OwnerHints,
  from: string,
  to: string,
  reservation: string | undefined,
  now = Date.now(),
): string {
  const r = reservation ?? '-';
  return `v1 ${from} ${to} ${now} ${r} ${hints.sign(FORWARD_PURPOSE, markText(from, to, now, r))}`;
}

/** The forwarding instance and its reservation, if `value` is a valid mark addressed to `self`. */
export function verifyForwardMark(
  hints: OwnerHints | undefined,
  self: string,
  value: string | string[] | undefined,
  now = Date.now(),
): { ok: true; mark: ForwardMark } | { ok: false; reason: string } {
  if (!hints) return { ok: false, reason: 'this agent has no fleet key yet' };
  if (typeof value !== 'string') return { ok: false, reason: 'malformed forwarding mark' };
  const parts = value.split(' ');
  if (parts.length !== 6 || parts[0] !== 'v1') return { ok: false, reason: 'malformed forwarding mark' };
  const [, from, to, atText, r, mac] = parts as [string, string, string, string, string, string];
  const at = Number(atText);
  if (!FIELD.test(from) || !FIELD.test(to) || !FIELD.test(r) || !Number.isSafeInteger(at))
    return { ok: false, reason: 'malformed forwarding mark' };
  if (to !== self) return { ok: false, reason: 'forwarding mark addressed to another instance' };
  if (Math.abs(now - at) > FORWARD_MARK_MAX_AGE_MS) return { ok: false, reason: 'forwarding mark expired' };
  if (!hints.verify(FORWARD_PURPOSE, markText(from, to, at, r), mac))
    return { ok: false, reason: 'forwarding mark with a bad signature' };
  return { ok: true, mark: { from, reservation: r === '-' ? undefined : r } };
}

/** One keep-alive pool per other agent of the fleet, by advertised origin. */
export class PeerPools {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly connectTimeoutMs: number) {}

  get(advertise: string): { pool: Pool; host: string } {
    const url = new URL(advertise);
    let pool = this.pools.get(url.origin);
    if (!pool) {
      pool = new Pool(url.origin, {
        connect: { timeout: this.connectTimeoutMs },
        // The owner agent answers for its upstream: no extra header timeout on the hop, and streams may idle.
        headersTimeout: 0,
        bodyTimeout: 0,
        keepAliveTimeout: 4_000,
      });
      this.pools.set(url.origin, pool);
    }
    return { pool, host: url.host };
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => {})));
  }
}
