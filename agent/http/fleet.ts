/**
 * The HTTP front's side of agent-to-agent forwards: the headers and the connection pools to the
 * other agents. A request (or WebSocket upgrade) the routing core sends to another agent goes to
 * its `--advertise` address with `x-sessionfleet-forwarded-by: <mark>` (the mark's codec is
 * `agent/routing/mark.ts`). An invalid mark is ignored (the header never reaches the upstream)
 * and the request is routed like any other.
 */
import { Pool } from 'undici';
import { FLEET_HEADERS } from '../fleet/types.js';

/** Set by an owner on the answer to a marked request for a session it does not hold. */
export const NOT_OWNER_HEADER = 'x-sessionfleet-not-owner';
export const FORWARDED_BY_HEADER = FLEET_HEADERS.forwardedBy;

/**
 * Keep-alive pools to the other agents of the fleet, by advertised origin: two per agent, one for
 * requests and one for the requests that open a long-lived stream, for the reason the front keeps
 * two to its instance (`createUpstreamPool`): undici walks a pool's connections on every dispatch,
 * and each open stream holds one.
 */
export class PeerPools {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly connectTimeoutMs: number) {}

  get(advertise: string, stream = false): { pool: Pool; host: string } {
    const url = new URL(advertise);
    const key = stream ? `${url.origin} streams` : url.origin;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new Pool(url.origin, {
        connect: { timeout: this.connectTimeoutMs },
        // The owner agent answers for its upstream: no extra header timeout on the hop, and streams may idle.
        headersTimeout: 0,
        bodyTimeout: 0,
        keepAliveTimeout: 4_000,
      });
      this.pools.set(key, pool);
    }
    return { pool, host: url.host };
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => {})));
  }
}
