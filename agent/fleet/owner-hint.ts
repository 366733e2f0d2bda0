/**
 * Owner hints: session ids that name the instance holding the session, signed, so an agent can
 * route a request to its owner without asking Redis — which is what keeps routing alive through a
 * short Redis outage.
 *
 * The idea is Envoy's stateful session filter, which writes the chosen upstream's address into a
 * cookie or header so any proxy can route without shared state. Two things differ on purpose:
 * - the hint names the *instance id*, never an address. The address comes from the fleet view the
 *   agent caches from Redis heartbeats, so a forged or stale hint can only ever point at a member
 *   of the fleet (no request smuggling to arbitrary hosts), and an instance that restarts on a new
 *   address keeps its hints valid;
 * - the hint is signed (HMAC-SHA256, truncated to 72 bits), so a client cannot steer its session
 *   (or probe) at an instance of its choosing, and an agent can tell its own ids from arbitrary
 *   ones. The registry stays the authority whenever Redis answers: the hint is a fallback.
 *
 * Format: `<instance id>~<mac>~<body>`. Instance ids never contain `~`, the MAC has a fixed length,
 * and the body is either random (an id the agent mints, e.g. the affinity cookie) or the upstream's
 * own session id (a wrapped `Mcp-Session-Id`), which may itself contain anything visible.
 *
 * Keys: `SESSIONFLEET_FLEET_KEY` (from a Kubernetes Secret or Key Vault), a comma-separated list:
 * the first key signs, every key verifies, so keys rotate without breaking live sessions. Without
 * it the coordinator shares a random key through Redis (see docs/fleet.md).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const MAC_BYTES = 9;
const MAC_CHARS = 12; // base64url of 9 bytes, no padding
const RANDOM_BYTES = 16;
/** The longest id the fronts accept (errors.ts: 1-128 visible ASCII characters). */
export const MAX_SESSION_ID_LENGTH = 128;
const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface OwnerHint {
  readonly instanceId: string;
  /** The random part, or the upstream's own session id for a wrapped id. */
  readonly body: string;
}

/** Parses `SESSIONFLEET_FLEET_KEY`: comma-separated, each at least 16 characters. */
export function parseFleetKeys(text: string): Buffer[] {
  const keys = text
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k.length > 0);
  if (keys.length === 0) throw new Error('SESSIONFLEET_FLEET_KEY is empty');
  for (const [i, key] of keys.entries()) {
    if (key.length < 16)
      throw new Error(`SESSIONFLEET_FLEET_KEY: key ${i + 1} has ${key.length} characters; use at least 16`);
  }
  return keys.map((k) => Buffer.from(k, 'utf8'));
}

export class OwnerHints {
  private readonly keys: readonly Buffer[];

  constructor(keys: readonly Buffer[]) {
    if (keys.length === 0) throw new Error('owner hints need at least one key');
    this.keys = keys;
  }

  private mac(key: Buffer, instanceId: string, body: string): string {
    // Domain-separated, with both fields delimited, so no two (instance, body) pairs sign alike.
    return createHmac('sha256', key)
      .update(`sessionfleet-owner-hint-v1\0${instanceId}\0${body}`)
      .digest()
      .subarray(0, MAC_BYTES)
      .toString('base64url');
  }

  /** Hints `body` with its owner; undefined if the result would be longer than a session id may be. */
  hint(instanceId: string, body: string): string | undefined {
    if (!INSTANCE_ID.test(instanceId)) throw new Error(`not an instance id: ${JSON.stringify(instanceId)}`);
    const id = `${instanceId}~${this.mac(this.keys[0]!, instanceId, body)}~${body}`;
    return id.length <= MAX_SESSION_ID_LENGTH ? id : undefined;
  }

  /**
   * A new unguessable session id (128 random bits) carrying its owner. Falls back to the bare
   * random part when the instance id is too long to fit: routing then relies on the registry only.
   */
  mint(instanceId: string): string {
    const body = randomBytes(RANDOM_BYTES).toString('base64url');
    return this.hint(instanceId, body) ?? body;
  }

  /** Wraps an upstream's session id (e.g. `Mcp-Session-Id`); undefined if it would not fit. */
  wrap(instanceId: string, upstreamId: string): string | undefined {
    return this.hint(instanceId, upstreamId);
  }

  /**
   * A MAC of `text` for one `purpose` (agent-to-agent messages, e.g. the Copilot front's hop
   * `connect`), under the signing key; domain-separated from the hints and from other purposes.
   */
  sign(purpose: string, text: string): string {
    return this.purposeMac(this.keys[0]!, purpose, text);
  }

  /** Whether `mac` is `sign(purpose, text)` under any of the keys (rotation). */
  verify(purpose: string, text: string, mac: string): boolean {
    const given = Buffer.from(mac);
    for (const key of this.keys) {
      const expected = Buffer.from(this.purposeMac(key, purpose, text));
      if (expected.length === given.length && timingSafeEqual(expected, given)) return true;
    }
    return false;
  }

  private purposeMac(key: Buffer, purpose: string, text: string): string {
    return createHmac('sha256', key).update(`sessionfleet-${purpose}-v1\0${text}`).digest().toString('base64url');
  }

  /** The owner named by a hinted id, if the signature checks out with any key. */
  read(id: string): OwnerHint | undefined {
    const first = id.indexOf('~');
    if (first <= 0) return undefined;
    const instanceId = id.slice(0, first);
    if (!INSTANCE_ID.test(instanceId)) return undefined;
    const macEnd = first + 1 + MAC_CHARS;
    if (id[macEnd] !== '~') return undefined;
    const given = Buffer.from(id.slice(first + 1, macEnd));
    const body = id.slice(macEnd + 1);
    if (body.length === 0) return undefined;
    for (const key of this.keys) {
      const expected = Buffer.from(this.mac(key, instanceId, body));
      if (expected.length === given.length && timingSafeEqual(expected, given)) return { instanceId, body };
    }
    return undefined;
  }
}
