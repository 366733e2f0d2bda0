/**
 * The session quotas per principal and per tenant (`sessionsPerPrincipal`, `sessionsPerTenant`),
 * written once for every coordinator. In a fleet the rule runs inside the placement script
 * (`scripts.ts`, atomic across agents) and only its answer is turned into the error here; on one
 * instance — `LocalCoordinator`, and `FleetCoordinator` placing fail-open while Redis is away —
 * `enforceQuotas` counts what the instance holds. Either way the client gets the same error.
 */
import type { Policy } from '../../policy/index.js';
import { AgentError } from '../core/errors.js';
import type { NewSession } from './types.js';

/** Something that holds a quota place: a session, or a placement not yet opened. */
export interface QuotaHolder {
  readonly principal: string | undefined;
  readonly tenant: string | undefined;
}

/** The error for a principal or tenant that already holds `held` sessions, its quota. */
export function quotaError(
  policy: Pick<Policy, 'sessionsPerPrincipal' | 'sessionsPerTenant'>,
  quota: 'principal' | 'tenant',
  who: string,
  held: number,
): AgentError {
  if (quota === 'principal') {
    const limit = policy.sessionsPerPrincipal;
    return new AgentError(
      'PRINCIPAL_QUOTA_REACHED',
      `principal ${JSON.stringify(who)} holds ${held} sessions, the sessionsPerPrincipal quota (${limit})`,
      { details: { quota: 'sessionsPerPrincipal', limit, principal: who } },
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
 * quota among `holders`. The principal is checked first, as in the placement script.
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
    if (principalLimit !== undefined && holder.principal === principal) byPrincipal++;
    if (tenantLimit !== undefined && holder.tenant === tenant) byTenant++;
  }
  if (principalLimit !== undefined && byPrincipal >= principalLimit)
    throw quotaError(policy, 'principal', principal!, byPrincipal);
  if (tenantLimit !== undefined && byTenant >= tenantLimit) throw quotaError(policy, 'tenant', tenant!, byTenant);
}
