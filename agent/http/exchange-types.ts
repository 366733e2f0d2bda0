/**
 * The types an exchange is made with and reports: what kind of request it is, how it ended, and
 * where a forward to another agent goes.
 */
import type { Pool } from 'undici';

export type ExchangeKind =
  /** any request, session or not */
  | 'plain'
  /** mcp-streamable-http `initialize`: the response names the new session */
  | 'mcp-initialize'
  /** mcp-streamable-http DELETE: the session ends whatever the upstream answers */
  | 'mcp-delete'
  /** mcp-sse stream: its `endpoint` event names the new session; its end ends the session */
  | 'sse-open';

export type Outcome = 'ok' | 'rejected' | 'upstream-error' | 'aborted';

/** Where a forward to another agent of the fleet goes (instead of this agent's upstream). */
export interface PeerTarget {
  readonly pool: Pool;
  /** The owner agent's `host[:port]`. */
  readonly host: string;
  /** Extra `name, value` pairs: the signed forwarding mark. */
  readonly headers: readonly string[];
  /**
   * Called at most once when the owner could not be reached, or said it does not hold the
   * session, before anything reached the client; true if the host took over (routing again).
   */
  readonly retry?: () => boolean;
  /** Called when the forward failed for good (a placement to give back). */
  readonly failed?: () => void;
}
