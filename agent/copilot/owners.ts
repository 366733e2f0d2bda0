/**
 * Who owns each Copilot session (SPEC.md §7): the principal that created it through the agent,
 * in its tenant — a principal name is unique within its tenant only, so the owner is the pair.
 *
 * The binding is written into the session's client metadata on the CLI (`sessionfleet/owner`, the
 * principal, and `sessionfleet/tenant`, its tenant if it has one), which lives with the session
 * state on the volume; this directory is a bounded cache in front of it. So after an agent
 * restart, or on another instance mounting the same state, a saved session is still resumable by
 * its owner and by nobody else. A session that exists with no recorded owner (created without the
 * agent) is reachable by nobody through the agent.
 */
import { isName, tenantOf } from '../core/tenancy.js';
import { OWNER_METADATA_KEY, OWNER_TENANT_METADATA_KEY } from './methods.js';

/** A principal in its tenant (undefined: the principal has none): who a session belongs to. */
export interface Owner {
  readonly principal: string;
  readonly tenant: string | undefined;
}

export type Ownership =
  /** The session exists and records its owner. */
  | { state: 'owned'; owner: Owner }
  /** The session exists but records no owner: it was not created through the agent. */
  | { state: 'unowned' }
  /** No such session (never created, or deleted). */
  | { state: 'absent' };

/** Reads the persisted owners of up to `OwnerDirectory.batchSize` sessions at once. */
export type OwnerLookup = (sessionIds: readonly string[]) => Promise<Map<string, Ownership>>;

export class OwnerDirectory {
  static readonly batchSize = 1000;
  /** id → owner, least recently used first. */
  private readonly owners = new Map<string, Owner>();

  constructor(
    private readonly lookup: OwnerLookup,
    private readonly maxCached = 100_000,
  ) {}

  get cachedCount(): number {
    return this.owners.size;
  }

  /** The owner if it is cached; no I/O. */
  known(sessionId: string): Owner | undefined {
    return this.owners.get(sessionId);
  }

  bind(sessionId: string, owner: Owner): void {
    this.owners.delete(sessionId);
    this.owners.set(sessionId, owner);
    while (this.owners.size > this.maxCached) {
      const oldest = this.owners.keys().next();
      if (oldest.done) break;
      this.owners.delete(oldest.value);
    }
  }

  forget(sessionId: string): void {
    this.owners.delete(sessionId);
  }

  /** The ownership of one session: the cache, else the session's persisted metadata. */
  async resolve(sessionId: string): Promise<Ownership> {
    const found = await this.resolveMany([sessionId]);
    return found.get(sessionId) ?? { state: 'absent' };
  }

  /** The ownership of many sessions, reading only the uncached ones, in batches. */
  async resolveMany(sessionIds: readonly string[]): Promise<Map<string, Ownership>> {
    const result = new Map<string, Ownership>();
    const missingSet = new Set<string>();
    for (const id of sessionIds) {
      const owner = this.owners.get(id);
      if (owner !== undefined) result.set(id, { state: 'owned', owner });
      else missingSet.add(id);
    }
    const missing = [...missingSet];
    for (let i = 0; i < missing.length; i += OwnerDirectory.batchSize) {
      const batch = missing.slice(i, i + OwnerDirectory.batchSize);
      const found = await this.lookup(batch);
      for (const id of batch) {
        const ownership = found.get(id) ?? { state: 'absent' };
        result.set(id, ownership);
        // Only a recorded owner is cached: absent ids can be created later, by anyone.
        if (ownership.state === 'owned' && !this.owners.has(id)) this.bind(id, ownership.owner);
      }
    }
    return result;
  }
}

/**
 * The ownership a session's client metadata records: `sessionfleet/owner` and `sessionfleet/tenant`;
 * a record without a tenant belongs to `defaultTenant` (`--tenant`).
 */
export function ownershipOf(metadata: Record<string, unknown>, defaultTenant: string | undefined): Ownership {
  const principal = metadata[OWNER_METADATA_KEY];
  const tenant = metadata[OWNER_TENANT_METADATA_KEY];
  if (typeof principal === 'string' && (tenant === undefined || isName(tenant)))
    return { state: 'owned', owner: { principal, tenant: tenantOf(tenant, { tenant: defaultTenant }) } };
  return { state: 'unowned' };
}
