/**
 * The `jwt` prop every HTTP fleet takes (the agent's `--jwt-issuer` and friends, ADR 0020): the
 * agents verify a bearer JWT on every request and take the principal from it, instead of trusting
 * an authenticating proxy's header. Checked as the agent checks the flags; values that are
 * unresolved tokens are only known at apply time and are not judged.
 */
import { Token } from 'cdktf';
import { flagArg } from '../policy/agent-interface.js';
import { describeValue } from '../policy/format.js';
import type { PolicyInput } from '../policy/index.js';

/** JWT mode: the agents act as OAuth resource servers for one issuer. */
export interface FleetJwt {
  /**
   * The issuer every token must name as `iss`, exactly (`--jwt-issuer`); its metadata
   * (`/.well-known/oauth-authorization-server` or `openid-configuration`) names its keys.
   */
  readonly issuer: string;
  /**
   * The audience every token must name as `aud` (`--jwt-audience`): the fleet's own URL as
   * clients reach it, e.g. `https://mcp.example.com/mcp` (RFC 8707, as MCP requires).
   */
  readonly audience: string;
  /**
   * The issuer's JWKS (`--jwks-url`).
   * @default - the `jwks_uri` of the issuer's metadata
   */
  readonly jwksUrl?: string;
  /**
   * The claim naming the principal, qualified by the issuer as `<issuer>#<value>` (`--jwt-principal-claim`).
   * @default "sub"
   */
  readonly principalClaim?: string;
  /**
   * The claim naming the principal's tenant (`--jwt-tenant-claim`).
   * @default - the tenant the instance serves, if any
   */
  readonly tenantClaim?: string;
}

export interface FleetJwtProps {
  readonly policy: PolicyInput;
  readonly jwt?: FleetJwt;
  readonly principalHeader?: string;
  readonly tenantHeader?: string;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

function urlProblem(prop: string, value: string | undefined): string | undefined {
  if (value === undefined || Token.isUnresolved(value)) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  const ok =
    url !== undefined &&
    !value.includes('#') &&
    (url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.test(url.hostname)));
  return ok ? undefined : `'${prop}' (${describeValue(value)}) must be an https:// URL without a fragment`;
}

/** Every problem with `jwt`, each a sentence naming the prop, the value and the rule. */
export function fleetJwtProblems(props: FleetJwtProps): string[] {
  const jwt = props.jwt;
  if (jwt === undefined) return [];
  const problems: string[] = [];
  for (const header of ['principalHeader', 'tenantHeader'] as const) {
    if (props[header] !== undefined) {
      problems.push(
        `'${header}' cannot be used with 'jwt': the principal comes either from a verified bearer token or from a trusted proxy's header, not both`,
      );
    }
  }
  for (const [prop, value] of [
    ['jwt.issuer', jwt.issuer],
    ['jwt.audience', jwt.audience],
    ['jwt.jwksUrl', jwt.jwksUrl],
  ] as const) {
    const problem = urlProblem(prop, value);
    if (problem) problems.push(problem);
  }
  for (const [prop, value] of [
    ['jwt.principalClaim', jwt.principalClaim],
    ['jwt.tenantClaim', jwt.tenantClaim],
  ] as const) {
    if (value !== undefined && !Token.isUnresolved(value) && !/^[^\s]{1,256}$/.test(value)) {
      problems.push(`'${prop}' (${describeValue(value)}) must be a claim name of 1-256 characters without whitespace`);
    }
  }
  return problems;
}

/** The agent's flags for `jwt`. */
export function jwtArgs(jwt: FleetJwt | undefined): string[] {
  if (jwt === undefined) return [];
  const args = [flagArg('jwt-issuer'), jwt.issuer, flagArg('jwt-audience'), jwt.audience];
  if (jwt.jwksUrl !== undefined) args.push(flagArg('jwks-url'), jwt.jwksUrl);
  if (jwt.principalClaim !== undefined) args.push(flagArg('jwt-principal-claim'), jwt.principalClaim);
  if (jwt.tenantClaim !== undefined) args.push(flagArg('jwt-tenant-claim'), jwt.tenantClaim);
  return args;
}
