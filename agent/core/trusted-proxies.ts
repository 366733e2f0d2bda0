/**
 * Where a principal header may come from (`--trusted-proxies`, SPEC.md §7: "a principal header is
 * trusted only from the configured proxy sources"). The header is the proxy's word about who the
 * caller is; from any other address it is anyone's word, so the request is refused rather than the
 * header ignored (ignoring it would serve the request as nobody, and hide the misrouting).
 * Agent-to-agent forwards carry a mark signed with the fleet key and are trusted by that mark.
 */
import { BlockList, isIP } from 'node:net';
import { AgentError } from './errors.js';

export const TRUSTED_PROXIES_RULE = 'must be comma-separated IPv4 or IPv6 CIDRs such as 10.0.0.0/8,fd00::/8';

/** Parses `a/n,b/m`; undefined when any entry is not a CIDR. */
export function parseTrustedProxies(text: string): string[] | undefined {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) return undefined;
  for (const entry of entries) {
    const [address, prefix, ...rest] = entry.split('/');
    if (rest.length > 0 || address === undefined || prefix === undefined || !/^\d{1,3}$/.test(prefix)) return undefined;
    const family = isIP(address);
    if (family === 0 || Number(prefix) > (family === 4 ? 32 : 128)) return undefined;
  }
  return entries;
}

interface TrustedList {
  readonly list: BlockList;
  /**
   * Verdicts by address as the socket reports it: a fleet sees requests from a few proxies, and
   * BlockList.check builds a SocketAddress each time (3.5% of the agent's CPU in the hot-path
   * profile). Bounded: cleared when it reaches VERDICTS_MAX addresses.
   */
  readonly verdicts: Map<string, boolean>;
}

const VERDICTS_MAX = 1024;
const lists = new WeakMap<readonly string[], TrustedList>();

function trustedListOf(cidrs: readonly string[]): TrustedList {
  let trusted = lists.get(cidrs);
  if (!trusted) {
    const list = new BlockList();
    for (const cidr of cidrs) {
      const [address = '', prefix = ''] = cidr.split('/');
      list.addSubnet(address, Number(prefix), isIP(address) === 4 ? 'ipv4' : 'ipv6');
    }
    trusted = { list, verdicts: new Map() };
    lists.set(cidrs, trusted);
  }
  return trusted;
}

/** Whether `address` (as a socket reports it, IPv4-mapped IPv6 included) is inside one of `cidrs`. */
export function isTrustedSource(address: string | undefined, cidrs: readonly string[]): boolean {
  if (address === undefined) return false;
  const trusted = trustedListOf(cidrs);
  const known = trusted.verdicts.get(address);
  if (known !== undefined) return known;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const plain = mapped?.[1] ?? address;
  const family = isIP(plain);
  const verdict = family !== 0 && trusted.list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
  if (trusted.verdicts.size >= VERDICTS_MAX) trusted.verdicts.clear();
  trusted.verdicts.set(address, verdict);
  return verdict;
}

export interface PrincipalSourceRequest {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly socket: { readonly remoteAddress?: string | undefined };
}

/**
 * The refusal of a request that carries the principal header from outside `--trusted-proxies`;
 * undefined when it may pass (no rule configured, no header, a trusted address, or a valid
 * agent-to-agent forward as judged by `isForward`).
 */
export function principalSourceRefusal(
  req: PrincipalSourceRequest,
  config: { readonly principalHeader?: string | undefined; readonly trustedProxies?: readonly string[] | undefined },
  isForward: () => boolean = () => false,
): AgentError | undefined {
  const { principalHeader, trustedProxies } = config;
  if (!principalHeader || !trustedProxies || req.headers[principalHeader] === undefined) return undefined;
  const source = req.socket.remoteAddress;
  if (isTrustedSource(source, trustedProxies) || isForward()) return undefined;
  return new AgentError(
    'PRINCIPAL_SOURCE_UNTRUSTED',
    `the ${principalHeader} header is accepted only from the authenticating proxy (--trusted-proxies), not from ${source ?? 'an unknown address'}`,
    { details: { header: principalHeader } },
  );
}
