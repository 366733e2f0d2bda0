/**
 * Who may send the principal header to an Azure fleet (`trustedProxies`, docs/adr/0100): the agent
 * takes the principal from that header on any request that reaches its client port, so whoever can
 * reach the port can name any principal. A fleet with `principalHeader` must say who that is.
 */
import { Token } from 'cdktf';
import { describeValue } from '../policy/format.js';

/** The sources allowed to reach the agents' client port when a principal header is trusted. */
export class AzureTrustedProxies {
  /**
   * Only these address ranges (the authenticating proxy's outbound addresses) reach the client
   * port. Container Apps enforces them on its ingress (IP restrictions: every other source is
   * refused). Container Instances has no ingress filter of its own, so there this is refused.
   * @see https://learn.microsoft.com/azure/container-apps/ip-restrictions
   */
  public static from(options: { readonly cidrs: readonly string[] }): AzureTrustedProxies {
    return new AzureTrustedProxies(options.cidrs, undefined);
  }

  /**
   * Any source that reaches the client port is trusted to name the principal: an explicit
   * acknowledgement, with the reason (e.g. "only the App Gateway's subnet can reach the VNet").
   */
  public static anySource(reason: string): AzureTrustedProxies {
    return new AzureTrustedProxies(undefined, reason);
  }

  private constructor(
    /** The ranges, for `from`. */
    public readonly cidrs: readonly string[] | undefined,
    /** The acknowledgement's reason, for `anySource`. */
    public readonly anySourceReason: string | undefined,
  ) {}
}

const IPV4_CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;

function isIpv4Cidr(value: string): boolean {
  const match = IPV4_CIDR.exec(value);
  if (!match) return false;
  const octets = match.slice(1, 5).map(Number);
  const prefix = match[5] === undefined ? 32 : Number(match[5]);
  return octets.every((o) => o <= 255) && prefix <= 32;
}

/**
 * Problems of `trustedProxies` with `principalHeader`. `cidrsEnforced` says whether the platform
 * can enforce address ranges (Container Apps can, Container Instances cannot).
 */
export function trustedProxiesProblems(
  principalHeader: string | undefined,
  trusted: AzureTrustedProxies | undefined,
  platform: { readonly cidrsEnforced: boolean; readonly name: string },
): string[] {
  if (principalHeader === undefined) {
    return trusted === undefined
      ? []
      : [`'trustedProxies' only applies with 'principalHeader': nothing else is taken on trust from a request`];
  }
  if (trusted === undefined) {
    return [
      `'trustedProxies' is required with 'principalHeader' (${describeValue(principalHeader)}): the agent takes the principal from that header on every request reaching its client port, so any source that reaches it could name any user; give AzureTrustedProxies.from({ cidrs }) with your proxy's addresses, or AzureTrustedProxies.anySource(reason)`,
    ];
  }
  if (trusted.anySourceReason !== undefined) {
    return trusted.anySourceReason.trim() === ''
      ? [
          `'trustedProxies' AzureTrustedProxies.anySource(reason) needs a reason: say why any source may name a principal`,
        ]
      : [];
  }
  const cidrs = trusted.cidrs ?? [];
  if (!platform.cidrsEnforced) {
    return [
      `'trustedProxies' address ranges cannot be enforced on ${platform.name}: a container group has no ingress filter and the agent does not check source addresses; deploy into a virtual network ('subnetIds') whose network security group admits only your proxy to port 8080, and acknowledge it with AzureTrustedProxies.anySource(reason)`,
    ];
  }
  if (!Token.isUnresolved(cidrs) && cidrs.length === 0) {
    return [`'trustedProxies' AzureTrustedProxies.from({ cidrs }) needs at least one address range`];
  }
  return cidrs
    .filter((cidr) => !Token.isUnresolved(cidr) && !isIpv4Cidr(cidr))
    .map(
      (cidr) =>
        `'trustedProxies' range ${describeValue(cidr)} must be an IPv4 address or CIDR range, e.g. "203.0.113.0/24"`,
    );
}
