/**
 * The `tenantHeader` prop every fleet takes (the agent's `--tenant-header`), checked as the agent
 * checks the flag, plus the combinations in which the agent would accept it but it could not work.
 * Values that are unresolved tokens are not judged: they are only known at apply time.
 */
import { Token } from 'cdktf';
import { describeValue } from '../policy/format.js';
import { HEADER_NAME_RULE, isHeaderName, sameHeaderName } from '../policy/header-name.js';
import type { PolicyInput } from '../policy/index.js';

export interface TenantHeaderProps {
  readonly policy: PolicyInput;
  readonly principalHeader?: string;
  readonly tenantHeader?: string;
}

/** Every problem with `tenantHeader`, each a sentence naming the prop, the value and the rule. */
export function tenantHeaderProblems(props: TenantHeaderProps): string[] {
  const header = props.tenantHeader;
  if (header === undefined || Token.isUnresolved(header)) return [];
  const shown = `'tenantHeader' (${describeValue(header)})`;
  // The agent refuses these at start (parseAgentConfig).
  if (!isHeaderName(header)) return [`${shown} must be ${HEADER_NAME_RULE}`];
  const problems: string[] = [];
  const principalHeader = props.principalHeader;
  if (
    principalHeader !== undefined &&
    !Token.isUnresolved(principalHeader) &&
    sameHeaderName(header, principalHeader)
  ) {
    problems.push(
      `${shown} must not be the header naming the principal ('principalHeader' ${describeValue(principalHeader)})`,
    );
  }
  // The agent accepts these, but the header would never name a tenant.
  const affinity = props.policy.affinity as { type?: unknown; headerName?: unknown } | undefined;
  const type = typeof affinity === 'object' && affinity !== null ? affinity.type : undefined;
  if (type === 'copilot-jsonrpc') {
    problems.push(
      `${shown} is read by the HTTP front only, and 'policy.affinity.type' "copilot-jsonrpc" is served by the Copilot front, which has no HTTP headers: name a Copilot client's tenant in its entry of the principals file ('principals') instead`,
    );
  }
  const sessionHeader = affinity?.headerName;
  if (
    type === 'header' &&
    typeof sessionHeader === 'string' &&
    !Token.isUnresolved(sessionHeader) &&
    sameHeaderName(header, sessionHeader)
  ) {
    problems.push(
      `${shown} must not be the header that carries the session id ('policy.affinity.headerName' ${describeValue(sessionHeader)})`,
    );
  }
  return problems;
}
