/**
 * DNS-rebinding protection, done by the agent itself. The agent sends the upstream its own
 * address as `Host` (the MCP SDK's servers refuse any other), so the upstream's own Host and
 * Origin checks can no longer see what the browser sent: the agent checks them instead, before
 * anything is routed.
 *
 * Rules (`--allowed-hosts`, `--allowed-origins`, comma-separated):
 * - a host entry is a name or address, optionally `:port` (then the port must match too), or
 *   `*.example.com` for any subdomain; `*` allows any host;
 * - an origin entry is `scheme://host[:port]` as browsers send it, or `*`;
 * - unset, an agent listening on loopback allows only loopback names (localhost, 127.0.0.1,
 *   [::1]) as Host and as Origin — what the MCP SDK does for a server on localhost — and an agent
 *   listening on any other address allows any (set them to your public names there).
 * A request without `Origin` (not from a browser) passes the Origin rule.
 */
import { AgentError } from '../core/errors.js';

export interface HostRules {
  readonly hosts: readonly string[] | 'any';
  readonly origins: readonly string[] | 'any';
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

export function isLoopbackListen(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The rules in force: the flags' lists, else the default for where the agent listens. */
export function hostRules(options: {
  listenHost: string;
  allowedHosts?: readonly string[] | undefined;
  allowedOrigins?: readonly string[] | undefined;
}): HostRules {
  const loopback = isLoopbackListen(options.listenHost);
  const list = (given: readonly string[] | undefined, fallback: readonly string[]) => {
    const value = given ?? (loopback ? fallback : ['*']);
    return value.includes('*') ? 'any' : value.map((entry) => entry.toLowerCase());
  };
  return {
    hosts: list(options.allowedHosts, LOOPBACK_NAMES),
    origins: list(
      options.allowedOrigins,
      LOOPBACK_NAMES.flatMap((name) => [`http://${name}`, `https://${name}`]),
    ),
  };
}

/** `name[:port]` of a Host header or an origin's authority; undefined when it is not one. */
function splitAuthority(authority: string): { name: string; port: string | undefined } | undefined {
  const match = /^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::(\d{1,5}))?$/.exec(authority.toLowerCase());
  return match ? { name: match[1]!, port: match[2] } : undefined;
}

/** A host entry's authority; `*.domain` stands as `wildcard.domain`, so it parses as a name. */
function entryAuthority(entry: string): { name: string; port: string | undefined } | undefined {
  return splitAuthority(entry.replace(/^\*\./, 'wildcard.'));
}

/** `scheme://authority` of an Origin header or an origin entry (http or https); undefined when it is not one. */
function splitOrigin(origin: string): { scheme: string; authority: string } | undefined {
  const match = /^(https?):\/\/([^/]+)$/.exec(origin.toLowerCase());
  return match ? { scheme: match[1]!, authority: match[2]! } : undefined;
}

function hostAllowed(entries: readonly string[], host: string): boolean {
  const given = splitAuthority(host);
  if (!given) return false;
  return entries.some((entry) => {
    const allowed = entryAuthority(entry);
    if (!allowed) return false;
    if (allowed.port !== undefined && allowed.port !== given.port) return false;
    if (entry.startsWith('*.')) return given.name.endsWith(allowed.name.slice('wildcard'.length));
    return allowed.name === given.name;
  });
}

function originAllowed(entries: readonly string[], origin: string): boolean {
  const given = splitOrigin(origin);
  if (!given) return false;
  return entries.some((entry) => {
    const allowed = splitOrigin(entry);
    if (!allowed || allowed.scheme !== given.scheme) return false;
    // An entry without a port allows any port of that host, as the loopback default needs.
    return hostAllowed([allowed.authority], given.authority);
  });
}

/** The refusal for a request whose Host or Origin the rules do not allow; undefined if allowed. */
export function hostRefusal(
  rules: HostRules,
  host: string | undefined,
  origin: string | undefined,
): AgentError | undefined {
  if (rules.hosts !== 'any' && (host === undefined || !hostAllowed(rules.hosts, host)))
    return new AgentError(
      'HOST_FORBIDDEN',
      `the Host header ${JSON.stringify(host ?? '')} is not one this agent serves`,
      {
        details: { host: host ?? null },
      },
    );
  if (rules.origins !== 'any' && origin !== undefined && !originAllowed(rules.origins, origin))
    return new AgentError('ORIGIN_FORBIDDEN', `requests from the origin ${JSON.stringify(origin)} are not allowed`, {
      details: { origin },
    });
  return undefined;
}

/** Checks one flag's list; a problem names the entry and the rule. */
export function hostListProblem(kind: 'hosts' | 'origins', value: string): string | undefined {
  const entries = value.split(',').map((entry) => entry.trim());
  for (const entry of entries) {
    if (entry === '*') continue;
    const ok =
      kind === 'hosts'
        ? entryAuthority(entry) !== undefined
        : splitAuthority(splitOrigin(entry)?.authority ?? '') !== undefined;
    if (!ok)
      return kind === 'hosts'
        ? `has ${JSON.stringify(entry)}: each entry must be a host name or address, optionally :port, *.domain, or *`
        : `has ${JSON.stringify(entry)}: each entry must be scheme://host[:port] (http or https), or *`;
  }
  return undefined;
}
