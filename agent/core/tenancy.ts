/**
 * Tenants (SPEC.md §2), the rules both fronts share. A session's tenant is its principal's: the
 * principal's own — its entry in `--principals` (Copilot), the `--tenant-header` (HTTP) — or else
 * the instance's `--tenant`. It counts against `sessionsPerTenant` when the session is placed.
 * Under `isolation: "tenant"` an instance serves its `--tenant` alone: a request or connection of
 * another tenant's principal is refused with TENANT_FORBIDDEN.
 */
import type { Policy } from '../../policy/index.js';
import type { AgentConfig } from './config.js';
import { AgentError } from './errors.js';

/** The rule for principal and tenant names, wherever they come from. */
export const NAME_RULE = 'a name of 1-256 characters without whitespace';
const NAME = /^[^\s]{1,256}$/;

export function isName(value: unknown): value is string {
  return typeof value === 'string' && NAME.test(value);
}

/** Who sent a request or opened a connection, as far as the agent knows. */
export interface Caller {
  readonly principal: string | undefined;
  readonly tenant: string | undefined;
}

/**
 * Whether two callers are the same user. A principal name is unique within its tenant only, so
 * this is the same name in the same tenant, or in none (an empty name is none, as in the fleet's
 * scripts). Used wherever ownership or a quota is decided, on both fronts.
 */
export function sameUser(a: Caller, b: Caller): boolean {
  return a.principal === b.principal && (a.tenant || undefined) === (b.tenant || undefined);
}

/** A principal's tenant: its own, else the instance's `--tenant`. */
export function tenantOf(own: string | undefined, config: Pick<AgentConfig, 'tenant'>): string | undefined {
  return own ?? config.tenant;
}

/** Under tenant isolation, the refusal of a caller of another tenant; undefined when it may go on. */
export function tenantRefusal(
  policy: Pick<Policy, 'isolation'>,
  config: Pick<AgentConfig, 'tenant'>,
  caller: Caller,
): AgentError | undefined {
  if (policy.isolation !== 'tenant' || caller.tenant === config.tenant) return undefined;
  const who = caller.principal !== undefined ? `principal ${JSON.stringify(caller.principal)}` : 'this request';
  // The instance's own tenant is not named: the caller belongs to another one.
  return new AgentError(
    'TENANT_FORBIDDEN',
    `${who} belongs to tenant ${JSON.stringify(caller.tenant)}, and this instance serves another tenant only (tenant isolation)`,
    { details: { tenant: caller.tenant } },
  );
}
