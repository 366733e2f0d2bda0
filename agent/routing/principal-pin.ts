/**
 * What `isolation: "session"` means for MCP 2026-07-28 traffic, which has no sessions (ADR 0015):
 * the principal is the unit. A principal's stateless requests are routed as one session whose id
 * the agent derives from the principal (and its tenant), so that session isolation's rules apply
 * unchanged: the instance (sessionsPerInstance 1) serves that principal and no other, the fleet
 * places and forwards it like any session, it ends at the idle timeout or lifetime, and
 * `recycleAfterSession` replaces the instance when it does. The next request of the principal
 * after that starts it anew on a fresh instance (`whenMissing: "resume"`), never "expired".
 *
 * A pinned session is the agent's own: the upstream never saw its id (no DELETE is sent for it).
 */
import { createHash } from 'node:crypto';
import type { Caller } from '../core/tenancy.js';

/** The prefix of pinned ids: no MCP server mints ids with it (they are UUIDs or random tokens). */
const PIN_PREFIX = 'sf-principal.';

/** The session id that pins `caller`'s stateless requests to one instance. */
export function principalPinId(caller: Caller): string {
  const digest = createHash('sha256')
    .update(`${caller.tenant ?? ''}\u0000${caller.principal ?? ''}`)
    .digest('base64url');
  return `${PIN_PREFIX}${digest.slice(0, 32)}`;
}

/** Whether a session id is a principal's pin (the agent's own, unknown upstream). */
export function isPrincipalPin(id: string): boolean {
  return id.startsWith(PIN_PREFIX);
}
