/**
 * The `principalHeader` and `tenantHeader` props every fleet takes (the agent's
 * `--principal-header` and `--tenant-header`): trusted headers, set by an authenticating proxy,
 * that name the caller. Checked as the agent checks the flags, plus the combinations in which the
 * agent would accept them but they could not work. Values that are unresolved tokens are not
 * judged: they are only known at apply time.
 */
import { Token } from 'cdktf';
import { describeValue } from '../policy/format.js';
import { HEADER_NAME_RULE, isHeaderName, sameHeaderName } from '../policy/header-name.js';
import type { PolicyInput } from '../policy/index.js';

export interface IdentityHeaderProps {
  readonly policy: PolicyInput;
  readonly principalHeader?: string;
  readonly tenantHeader?: string;
}

const NAMES = { principalHeader: 'principal', tenantHeader: 'tenant' } as const;

/** Every problem with `principalHeader` and `tenantHeader`, each a sentence naming the prop, the value and the rule. */
export function identityHeaderProblems(props: IdentityHeaderProps): string[] {
  const problems: string[] = [];
  const affinity = props.policy.affinity as { type?: unknown; headerName?: unknown } | undefined;
  const type = typeof affinity === 'object' && affinity !== null ? affinity.type : undefined;
  const sessionHeader = type === 'header' ? affinity?.headerName : undefined;
  for (const prop of ['principalHeader', 'tenantHeader'] as const) {
    const header = props[prop];
    if (header === undefined || Token.isUnresolved(header)) continue;
    const shown = `'${prop}' (${describeValue(header)})`;
    // The agent refuses these at start (parseAgentConfig, checkConfigAgainstPolicy).
    if (!isHeaderName(header)) {
      problems.push(`${shown} must be ${HEADER_NAME_RULE}`);
      continue;
    }
    const principalHeader = props.principalHeader;
    if (
      prop === 'tenantHeader' &&
      principalHeader !== undefined &&
      !Token.isUnresolved(principalHeader) &&
      sameHeaderName(header, principalHeader)
    ) {
      problems.push(
        `${shown} must not be the header naming the principal ('principalHeader' ${describeValue(principalHeader)})`,
      );
    }
    if (
      typeof sessionHeader === 'string' &&
      !Token.isUnresolved(sessionHeader) &&
      sameHeaderName(header, sessionHeader)
    ) {
      problems.push(
        `${shown} must not be the header that carries the session id ('policy.affinity.headerName' ${describeValue(sessionHeader)})`,
      );
    }
    // The agent accepts this, but the header would never name anyone.
    if (type === 'copilot-jsonrpc') {
      problems.push(
        `${shown} is read by the HTTP front only, and 'policy.affinity.type' "copilot-jsonrpc" is served by the Copilot front, which has no HTTP headers: name a Copilot client's ${NAMES[prop]} in its entry of the principals file ('principals') instead`,
      );
    }
  }
  return problems;
}
