/**
 * The session quotas per principal and per tenant (`sessionsPerPrincipal`, `sessionsPerTenant`),
 * written once for every coordinator. In a fleet the rule runs inside the placement script
 * (`scripts.ts`, atomic across agents) and only its answer is turned into the error here; on one
 * instance — `LocalCoordinator`, and `FleetCoordinator` placing fail-open while Redis is away —
 * `enforceQuotas` counts what the instance holds. Either way the client gets the same error.
 *
 * A principal is identified by its name *and* its tenant: a principal name is unique within its
 * tenant only, so alice of tenant acme and alice of tenant globex each have their own
 * `sessionsPerPrincipal` quota, and alice without a tenant is a third user.
 */
import type { Policy } from '../../policy/index.js';
import { AgentError } from '../core/errors.js';
import { sameUser } from '../core/tenancy.js';
import type { NewSession } from './types.js';

/** Something that holds a quota place: a session, or a placement not yet opened. */
export interface QuotaHolder {
  readonly principal: string | undefined;
  readonly tenant: string | undefined;
}

/**
 * The error for a principal or tenant that already holds `held` sessions, its quota. For the
 * principal's quota `tenant` is the principal's tenant, named in the details when it has one.
 */
export function quotaError(
  policy: Pick<Policy, 'sessionsPerPrincipal' | 'sessionsPerTenant'>,
  quota: 'principal' | 'tenant',
  who: string,
  held: number,
  tenant?: string,
): AgentError {
  if (quota === 'principal') {
    const limit = policy.sessionsPerPrincipal;
    return new AgentError(
      'PRINCIPAL_QUOTA_REACHED',
      `principal ${JSON.stringify(who)} holds ${held} sessions, the sessionsPerPrincipal quota (${limit})`,
      { details: { quota: 'sessionsPerPrincipal', limit, principal: who, ...(tenant ? { tenant } : {}) } },
    );
  }
  const limit = policy.sessionsPerTenant;
  return new AgentError(
    'TENANT_QUOTA_REACHED',
    `tenant ${JSON.stringify(who)} holds ${held} sessions, the sessionsPerTenant quota (${limit})`,
    { details: { quota: 'sessionsPerTenant', limit, tenant: who } },
  );
}

/**
 * Throws the quota error when the new session's principal (then its tenant) already holds its
 * quota among `holders`. The principal is checked first, as in the placement script, and counts
 * only the holders of the same principal in the same tenant.
 */
export function enforceQuotas(
  policy: Pick<Policy, 'sessionsPerPrincipal' | 'sessionsPerTenant'>,
  request: NewSession,
  holders: Iterable<QuotaHolder>,
): void {
  const { principal, tenant } = request;
  // An empty name is no name, as in the placement script.
  const principalLimit = principal ? policy.sessionsPerPrincipal : undefined;
  const tenantLimit = tenant ? policy.sessionsPerTenant : undefined;
  if (principalLimit === undefined && tenantLimit === undefined) return;
  let byPrincipal = 0;
  let byTenant = 0;
  for (const holder of holders) {
    if (principalLimit !== undefined && sameUser(holder, { principal, tenant })) byPrincipal++;
    if (tenantLimit !== undefined && holder.tenant === tenant) byTenant++;
  }
  if (principalLimit !== undefined && byPrincipal >= principalLimit)
    throw quotaError(policy, 'principal', principal!, byPrincipal, tenant);
  if (tenantLimit !== undefined && byTenant >= tenantLimit) throw quotaError(policy, 'tenant', tenant!, byTenant);
}
