/**
 * The fleet store's connection string, one rule for the agent's `--redis` and the constructs' Redis
 * props. Three forms, each with a TLS variant:
 *
 * - `redis://[user:password@]host[:port][/db]` (`rediss://`): one server;
 * - `redis-sentinel://[user:password@]host:port[,host:port…]/<primary name>[/db]`
 *   (`rediss-sentinel://`): a Sentinel-managed primary with replicas; the agent asks the sentinels
 *   where the primary is and follows a failover. `?sentinelUsername=…&sentinelPassword=…` when the
 *   sentinels have credentials of their own;
 * - `redis-cluster://[user:password@]host:port[,host:port…]` (`rediss-cluster://`): a Redis
 *   Cluster, reached through any of the seed nodes. One fleet's keys share a hash tag, so they sit
 *   in one slot and many fleets spread over the cluster.
 *
 * Pure: no ioredis here, so the constructs check the Sentinel and Cluster endpoints they are given
 * (`KubernetesFleetRedis.sentinel()`, `.cluster()`) by the same rule at synth time.
 */

export interface RedisHostPort {
  readonly host: string;
  readonly port: number;
}

interface Credentials {
  readonly username?: string;
  readonly password?: string;
}

export type RedisEndpoint =
  | ({ readonly kind: 'single'; readonly tls: boolean; readonly url: string } & Credentials)
  | ({
      readonly kind: 'sentinel';
      readonly tls: boolean;
      readonly sentinels: readonly RedisHostPort[];
      readonly primaryName: string;
      readonly db?: number;
      readonly sentinelUsername?: string;
      readonly sentinelPassword?: string;
    } & Credentials)
  | ({ readonly kind: 'cluster'; readonly tls: boolean; readonly nodes: readonly RedisHostPort[] } & Credentials);

export const REDIS_URL_FORMS =
  'redis://host:port, rediss://…, redis-sentinel://host:port[,host:port…]/<primary name>, rediss-sentinel://…, redis-cluster://host:port[,host:port…] or rediss-cluster://…';

const SCHEMES: Record<string, { kind: RedisEndpoint['kind']; tls: boolean }> = {
  redis: { kind: 'single', tls: false },
  rediss: { kind: 'single', tls: true },
  'redis-sentinel': { kind: 'sentinel', tls: false },
  'rediss-sentinel': { kind: 'sentinel', tls: true },
  'redis-cluster': { kind: 'cluster', tls: false },
  'rediss-cluster': { kind: 'cluster', tls: true },
};

/**
 * The URL with its password replaced, for messages and logs: everything between the user name (or
 * the scheme, when there is no colon: `redis://secret@host` is a password too) and the last `@`,
 * so that a password with an unencoded `/`, `?` or `@`, in a URL too broken to parse, is hidden too.
 */
export function redactRedisUrl(text: string): string {
  return text
    .replace(
      /^(\s*[a-z-]+:\/\/)(?:([^:@/]*):)?.*@/i,
      (_match, scheme: string, user: string | undefined) => `${scheme}${user === undefined ? '' : `${user}:`}***@`,
    )
    .replace(/([?&]sentinelPassword=)[^&]*/i, '$1***');
}

/** Parses a connection string; a problem is one sentence that names the part, its value and the rule. */
export function parseRedisUrl(text: string): { endpoint: RedisEndpoint } | { problem: string } {
  const shown = redactRedisUrl(text);
  const match = /^([a-z-]+):\/\/(?:([^@/]*)@)?([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/i.exec(text.trim());
  const scheme = match ? SCHEMES[match[1]!.toLowerCase()] : undefined;
  if (!match || !scheme) return { problem: `(${shown}) must be one of ${REDIS_URL_FORMS}` };
  const [, , userinfo, hostList = '', path = '', query = ''] = match;

  const credentials: { username?: string; password?: string } = {};
  if (userinfo !== undefined && userinfo !== '') {
    const colon = userinfo.indexOf(':');
    const username = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
    const password = colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
    // redis://:secret@host is the usual way to give a password with no ACL user.
    if (colon < 0) credentials.password = username;
    else {
      if (username !== '') credentials.username = username;
      if (password !== undefined && password !== '') credentials.password = password;
    }
  }

  if (scheme.kind === 'single') {
    if (hostList === '' || hostList.includes(','))
      return { problem: `(${shown}) must name one host: use redis-sentinel:// or redis-cluster:// for several` };
    return { endpoint: { kind: 'single', tls: scheme.tls, url: text.trim(), ...credentials } };
  }

  // The user info ends at the first '@': another one is the password's, and naming the host part
  // that holds it would show the password.
  if (hostList.includes('@'))
    return { problem: `(${shown}) must have an '@' in its user name or password encoded as %40` };
  const hosts: RedisHostPort[] = [];
  for (const part of hostList.split(',')) {
    const hostPort = parseHostPort(part.trim());
    if (typeof hostPort === 'string') return { problem: `(${shown}): ${hostPort}` };
    hosts.push(hostPort);
  }
  if (hosts.length === 0) return { problem: `(${shown}) must name at least one host:port` };
  const params = new URLSearchParams(query);

  if (scheme.kind === 'cluster') {
    if (path !== '' && path !== '/')
      return { problem: `(${shown}) must have no path: a Redis Cluster has one database (${JSON.stringify(path)})` };
    const unknown = [...params.keys()];
    if (unknown.length > 0) return { problem: `(${shown}) takes no query parameters (${unknown.join(', ')})` };
    return { endpoint: { kind: 'cluster', tls: scheme.tls, nodes: hosts, ...credentials } };
  }

  const segments = path.split('/').filter((s) => s !== '');
  const primaryName = segments[0] === undefined ? '' : decodeURIComponent(segments[0]);
  if (primaryName === '' || segments.length > 2)
    return { problem: `(${shown}) must end with /<primary name>[/<db>], the name the sentinels monitor` };
  let db: number | undefined;
  if (segments[1] !== undefined) {
    db = Number(segments[1]);
    if (!/^\d{1,2}$/.test(segments[1])) return { problem: `(${shown}): the database (${segments[1]}) must be 0–99` };
  }
  const sentinelCredentials: { sentinelUsername?: string; sentinelPassword?: string } = {};
  for (const [key, value] of params) {
    if (key === 'sentinelUsername') sentinelCredentials.sentinelUsername = value;
    else if (key === 'sentinelPassword') sentinelCredentials.sentinelPassword = value;
    else
      return { problem: `(${shown}): unknown parameter ${JSON.stringify(key)} (sentinelUsername, sentinelPassword)` };
  }
  return {
    endpoint: {
      kind: 'sentinel',
      tls: scheme.tls,
      sentinels: hosts,
      primaryName,
      ...(db === undefined ? {} : { db }),
      ...credentials,
      ...sentinelCredentials,
    },
  };
}

/**
 * The endpoint of a connection string the caller vouches for (a test's or a benchmark's own
 * server); a problem throws, naming `source` as the agent's start-up does.
 */
export function redisEndpoint(text: string, source = '--redis'): RedisEndpoint {
  const parsed = parseRedisUrl(text);
  if ('problem' in parsed) throw new Error(`${source} ${parsed.problem}`);
  return parsed.endpoint;
}

/** One `host:port` of a Sentinel or Cluster connection string, or the problem with it. */
export function parseHostPort(text: string): RedisHostPort | string {
  const match = /^(\[[0-9a-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/i.exec(text);
  if (!match) return `${JSON.stringify(text)} must be host:port`;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return `the port of ${JSON.stringify(text)} must be 1–65535`;
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
}
