/**
 * Where a fleet keeps its state in Redis. Every key and channel starts with one prefix,
 * `sessionfleet:{<fleet>}:` by default. The braces are a Redis Cluster hash tag: all of a fleet's
 * keys hash to one slot, so the Lua scripts, which touch several keys at once, also run on a
 * cluster. The price is that one fleet lives on one shard; a fleet's coordination traffic is small
 * (a few commands per new session), and several fleets still spread over the shards.
 *
 * Sets whose members are looked up by owner, principal or tenant are *lexicographic* sorted sets
 * (every score 0, member `<owner>\n<id>`) rather than one set per owner: a script can then count or
 * list one owner's members with ZLEXCOUNT / ZRANGEBYLEX on a key it declares up front, instead of
 * building key names at run time. `\n` cannot appear in an instance id, a principal or a tenant
 * (nor `\t` in the last two), and session ids are visible ASCII, so the member splits unambiguously. Reservations (slots held
 * for a session being created) sit in the same indexes as `<owner>\n <reservation id>`: the space
 * never occurs in a session id, and counting both together is exactly "slots in use".
 */

import { FLEET_SCALE_LIST_SUFFIX, fleetKeyPrefix } from '../../policy/agent-interface.js';

export interface FleetKeys {
  readonly prefix: string;
  /** ZSET instance id → lease deadline (ms, Redis clock). Alive while the deadline is ahead. */
  readonly leases: string;
  /** HASH instance id → session slots offered (0 while draining). */
  readonly capacity: string;
  /** HASH instance id → advertised URL (`--advertise`). */
  readonly address: string;
  /** HASH instance id → JSON of what the heartbeat reports (in flight, draining, started at). */
  readonly info: string;
  /** HASH session id → JSON session record (owner, principal, tenant, times, resumable). */
  readonly sessions: string;
  /** ZSET session id → absolute expiry (ms). */
  readonly expiries: string;
  /** ZSET session id → last activity (ms), written back in batches by the owner. */
  readonly activity: string;
  /** Lexicographic ZSET `<instance>\n<session id>` (and reservations): slots in use per instance. */
  readonly byInstance: string;
  /**
   * Lexicographic ZSET `<principal>\t<tenant>\n<session id>` (`<principal>\n<session id>` for a
   * principal without a tenant): sessions per principal, a principal being its name in its tenant.
   */
  readonly byPrincipal: string;
  /** Lexicographic ZSET `<tenant>\n<session id>`: sessions per tenant. */
  readonly byTenant: string;
  /**
   * ZSET session id → forget-at (ms, Redis clock): ids whose session ended in the last session
   * lifetime. A client-chosen id (header affinity) named here is refused as a new session.
   */
  readonly ended: string;
  /** HASH session id → why it ended (an `EndReason`, or `owner-lost`), for the ids in `ended`. */
  readonly endedReasons: string;
  /** HASH reservation id → JSON {instance, principal, tenant, session id if the client chose it}. */
  readonly reservations: string;
  /** ZSET reservation id → deadline (ms); expired reservations are reclaimed by the scripts. */
  readonly reservationExpiries: string;
  /** ZSET waiter id → deadline: new sessions waiting for capacity (the autoscaler's demand). */
  readonly demand: string;
  /**
   * LIST whose length is the fleet's session demand (sessions + reservations + waiters), kept by the
   * janitor leader for autoscalers that count list entries (KEDA's Redis scaler on Container Apps).
   */
  readonly scaleDemand: string;
  /**
   * Protocol 2 (ADR 0021), written beside the keys above, which agents of every version read.
   * ZSET instance id → minus its free slots (capacity minus slots in use), for live instances with
   * a free slot only: the instance with the most free slots (ties: the smallest id) comes first.
   */
  readonly free: string;
  /** ZSET instance id → lease deadline, written by protocol-2 agents only: how a mixed fleet is told. */
  readonly memberLeases: string;
  /** HASH instance id → '1' (a live member) or '0' (gone): the membership agents mirror. */
  readonly members: string;
  /** ZSET instance id → the membership version of its last change: what an agent asks deltas of. */
  readonly memberChanges: string;
  /** HASH epoch, version, checked (lapses recorded up to), floor (oldest version deltas start from). */
  readonly memberMeta: string;
  /**
   * HASH `<instance>\n<kind>\n<who>` → count: each agent's requests, streams and tasks per
   * principal and tenant (`policy.limits`), rewritten by its budget sync; a dead agent's fields
   * are dropped by the next sync of any agent.
   */
  readonly budgets: string;
  /** STRING counter: fencing tokens for every lock of the fleet. */
  readonly fence: string;
  /** STRING counter: places in lock queues, so the oldest waiter goes first. */
  readonly ticket: string;
  /** STRING: the HMAC key for owner hints when none is configured. */
  readonly hintKey: string;
  /** STRING `<holder id>:<token>`, PX TTL: who holds the lock on `resource`. */
  lockHolder(resource: string): string;
  /** ZSET waiter id → ticket: the FIFO queue of the lock on `resource`. */
  lockQueue(resource: string): string;
  /** ZSET waiter id → deadline: waiters that stop renewing this are dropped from the queue. */
  lockWaiters(resource: string): string;
  /** Pub/sub channel: the id of the waiter whose turn it is, sent on release. */
  lockChannel(resource: string): string;
  /** Pub/sub channel of one instance: admin requests (terminate) addressed to its sessions. */
  instanceChannel(instanceId: string): string;
  /** Pub/sub channel of one instance: peer calls (task and stream kill switches) and their answers. */
  peerChannel(instanceId: string): string;
}

export const DEFAULT_FLEET = 'default';
const FLEET_NAME = /^[A-Za-z0-9._-]{1,64}$/;

export function defaultPrefix(fleet: string): string {
  return fleetKeyPrefix(fleet);
}

/**
 * The keys of one fleet. `prefix` overrides the default entirely (keep a `{hash tag}` in it if the
 * Redis is a cluster).
 */
export function fleetKeys(options: { fleet?: string; prefix?: string } = {}): FleetKeys {
  const fleet = options.fleet ?? DEFAULT_FLEET;
  if (options.prefix === undefined && !FLEET_NAME.test(fleet)) {
    throw new Error(`fleet name ${JSON.stringify(fleet)} must be 1-64 letters, digits, '.', '_' or '-'`);
  }
  const p = options.prefix ?? defaultPrefix(fleet);
  // The lock keys put the kind before the resource: a resource may itself contain ':' and must
  // never produce another resource's queue key.
  return {
    prefix: p,
    leases: `${p}instances:lease`,
    capacity: `${p}instances:capacity`,
    address: `${p}instances:address`,
    info: `${p}instances:info`,
    sessions: `${p}sessions`,
    expiries: `${p}sessions:expiry`,
    activity: `${p}sessions:activity`,
    byInstance: `${p}index:instance`,
    byPrincipal: `${p}index:principal`,
    byTenant: `${p}index:tenant`,
    ended: `${p}sessions:ended`,
    endedReasons: `${p}sessions:ended:reason`,
    reservations: `${p}reservations`,
    reservationExpiries: `${p}reservations:expiry`,
    demand: `${p}demand`,
    scaleDemand: `${p}${FLEET_SCALE_LIST_SUFFIX}`,
    free: `${p}v2:instances:free`,
    memberLeases: `${p}v2:instances:lease`,
    members: `${p}v2:members`,
    memberChanges: `${p}v2:members:changed`,
    memberMeta: `${p}v2:members:meta`,
    budgets: `${p}budgets`,
    fence: `${p}lock:fence`,
    ticket: `${p}lock:ticket`,
    hintKey: `${p}hint-key`,
    lockHolder: (resource) => `${p}lock:holder:${resource}`,
    lockQueue: (resource) => `${p}lock:queue:${resource}`,
    lockWaiters: (resource) => `${p}lock:waiters:${resource}`,
    lockChannel: (resource) => `${p}lock:turn:${resource}`,
    instanceChannel: (instanceId) => `${p}instance:${instanceId}`,
    peerChannel: (instanceId) => `${p}peer:${instanceId}`,
  };
}
