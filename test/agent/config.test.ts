import { describe, expect, it } from 'vitest';
import { ConfigError, checkConfigAgainstPolicy, parseAgentConfig, parseHostPort } from '../../agent/config.js';
import { envName } from '../../policy/agent-interface.js';
import { validatePolicy } from '../../policy/index.js';

/** What `parseAgentConfig` reports wrong with `argv` and `env`; [] when it takes them. */
function configProblems(argv: string[], env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    parseAgentConfig(argv, env);
    return [];
  } catch (error) {
    return (error as ConfigError).problems;
  }
}

describe('agent flags', () => {
  it('maps each flag to its SESSIONFLEET_ variable', () => {
    expect(envName('admin-listen')).toBe('SESSIONFLEET_ADMIN_LISTEN');
    expect(envName('upstream-token')).toBe('SESSIONFLEET_UPSTREAM_TOKEN');
  });

  it('reads flags, falls back to the environment, and the command line wins', () => {
    const config = parseAgentConfig(
      ['--policy', 'p.json', '--upstream', 'http://127.0.0.1:3000', '--listen', '127.0.0.1:8081'],
      {
        SESSIONFLEET_ADMIN_LISTEN: '127.0.0.1:9191',
        SESSIONFLEET_LISTEN: '0.0.0.0:1',
        SESSIONFLEET_REDIS: 'redis://r:6379',
      },
      { hostname: 'pod-1' },
    );
    expect(config).toMatchObject({
      policyFile: 'p.json',
      listen: { host: '127.0.0.1', port: 8081 },
      adminListen: { host: '127.0.0.1', port: 9191 },
      redis: { kind: 'single', tls: false, url: 'redis://r:6379' },
      instanceId: 'pod-1',
    });
    expect(config.upstream.href).toBe('http://127.0.0.1:3000/');
    expect(config.advertise.href).toBe('http://127.0.0.1:8081/');
  });

  it('advertises the first non-loopback IPv4 address when listening on all interfaces', () => {
    const interfaces = {
      lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }],
      eth0: [
        { address: 'fe80::1', family: 'IPv6', internal: false },
        { address: '10.1.2.3', family: 'IPv4', internal: false },
      ],
    } as unknown as NodeJS.Dict<import('node:os').NetworkInterfaceInfo[]>;
    const config = parseAgentConfig(['--policy', 'p', '--upstream', 'http://127.0.0.1:1'], {}, { interfaces });
    expect(config.advertise.href).toBe('http://10.1.2.3:8080/');
    expect(config.advertiseExplicit).toBe(false);
    const explicit = parseAgentConfig(
      ['--policy', 'p', '--upstream', 'http://127.0.0.1:1', '--advertise', 'http://pod.svc:8080'],
      {},
      { interfaces },
    );
    expect(explicit.advertise.href).toBe('http://pod.svc:8080/');
    expect(explicit.advertiseExplicit).toBe(true);
  });

  it('parses host:port forms', () => {
    expect(parseHostPort('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseHostPort(':80')).toEqual({ host: '0.0.0.0', port: 80 });
    expect(parseHostPort('localhost:70000')).toBeUndefined();
    expect(parseHostPort('localhost')).toBeUndefined();
  });

  it('reports every problem at once, naming flag, value and rule', () => {
    let error: unknown;
    try {
      parseAgentConfig(
        ['--upstream', 'ftp://x:1', '--listen', '127.0.0.1:9090', '--redis', 'http://r', '--log-level', 'loud'],
        {},
      );
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      '--policy is required (or set SESSIONFLEET_POLICY)',
      '--upstream ("ftp://x:1") must be http://host:port or tcp://host:port (with an explicit port)',
      '--admin-listen (127.0.0.1:9090) must not be the client port (--listen 127.0.0.1:9090)',
      '--redis (http://r) must be one of redis://host:port, rediss://…, redis-sentinel://host:port[,host:port…]/<primary name>, rediss-sentinel://…, redis-cluster://host:port[,host:port…] or rediss-cluster://…',
      '--log-level ("loud") must be one of fatal, error, warn, info, debug, trace, silent',
    ]);
  });

  it('--redis: parsed once into the endpoint the fleet connects with; a problem names the source, never the password', () => {
    const base = ['--policy', 'p', '--upstream', 'http://127.0.0.1:1'];
    expect(
      parseAgentConfig([...base, '--redis', 'redis-sentinel://u:topsecret@s1:26379,s2:26379/mymaster/2'], {}).redis,
    ).toEqual({
      kind: 'sentinel',
      tls: false,
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
      ],
      primaryName: 'mymaster',
      db: 2,
      username: 'u',
      password: 'topsecret',
    });
    expect(parseAgentConfig(base, {}).redis).toBeUndefined();
    let error: unknown;
    try {
      parseAgentConfig(base, { SESSIONFLEET_REDIS: 'redis-sentinel://u:topsecret@s1/m?sentinelPassword=alsosecret' });
    } catch (e) {
      error = e;
    }
    expect((error as ConfigError).problems).toEqual([
      'SESSIONFLEET_REDIS (redis-sentinel://u:***@s1/m?sentinelPassword=***): "s1" must be host:port',
    ]);
  });

  it('--fleet-lease-ms: whole milliseconds from 1 s to 5 min, from the flag or SESSIONFLEET_FLEET_LEASE_MS', () => {
    const base = ['--policy', 'p', '--upstream', 'http://127.0.0.1:1', '--redis', 'redis://r:6379'];
    expect(parseAgentConfig(base, {}).fleetLeaseMs).toBeUndefined();
    expect(parseAgentConfig([...base, '--fleet-lease-ms', '1500'], {}).fleetLeaseMs).toBe(1500);
    expect(parseAgentConfig([...base, '--fleet-lease-ms', '1000'], {}).fleetLeaseMs).toBe(1000);
    expect(parseAgentConfig([...base, '--fleet-lease-ms', '300000'], {}).fleetLeaseMs).toBe(300_000);
    expect(parseAgentConfig(base, { SESSIONFLEET_FLEET_LEASE_MS: '4000' }).fleetLeaseMs).toBe(4000);
    // The command line wins over the environment.
    expect(
      parseAgentConfig([...base, '--fleet-lease-ms', '2000'], { SESSIONFLEET_FLEET_LEASE_MS: '4000' }).fleetLeaseMs,
    ).toBe(2000);
    expect(parseAgentConfig([...base, '--fleet-lease-ms', '2000'], {}).warnings).toBeUndefined();

    const problemsOf = (args: string[], env: NodeJS.ProcessEnv = {}) => configProblems([...base, ...args], env);
    const rule = 'must be a whole number of milliseconds from 1000 to 300000 (1 s to 5 min)';
    expect(problemsOf(['--fleet-lease-ms', '999'])).toEqual([`--fleet-lease-ms ("999") ${rule}`]);
    expect(problemsOf(['--fleet-lease-ms', '300001'])).toEqual([`--fleet-lease-ms ("300001") ${rule}`]);
    expect(problemsOf(['--fleet-lease-ms', '1.5s'])).toEqual([`--fleet-lease-ms ("1.5s") ${rule}`]);
    expect(problemsOf(['--fleet-lease-ms', '1500.5'])).toEqual([`--fleet-lease-ms ("1500.5") ${rule}`]);
    expect(problemsOf(['--fleet-lease-ms=-2000'])).toEqual([`--fleet-lease-ms ("-2000") ${rule}`]);
    expect(problemsOf(['--fleet-lease-ms', '1e4'])).toEqual([`--fleet-lease-ms ("1e4") ${rule}`]);
    expect(problemsOf(['--fleet-lease-ms', ''])).toEqual([`--fleet-lease-ms ("") ${rule}`]);
    expect(problemsOf([], { SESSIONFLEET_FLEET_LEASE_MS: '10s' })).toEqual([
      `SESSIONFLEET_FLEET_LEASE_MS ("10s") ${rule}`,
    ]);
  });

  it('warns about fleet-only flags given without --redis (they are accepted, and ignored)', () => {
    const config = parseAgentConfig(
      ['--policy', 'p', '--upstream', 'http://127.0.0.1:1', '--fleet-lease-ms', '1500', '--fleet', 'blue'],
      { SESSIONFLEET_FLEET_KEY: 'a-fleet-key-of-32-characters-00' },
    );
    expect(config.fleetLeaseMs).toBe(1500);
    expect(config.warnings).toEqual([
      '--fleet has no effect without --redis (or SESSIONFLEET_REDIS): it configures fleet coordination',
      'SESSIONFLEET_FLEET_KEY has no effect without --redis (or SESSIONFLEET_REDIS): it configures fleet coordination',
      '--fleet-lease-ms has no effect without --redis (or SESSIONFLEET_REDIS): it configures fleet coordination',
    ]);
    expect(parseAgentConfig(['--policy', 'p', '--upstream', 'http://127.0.0.1:1'], {}).warnings).toBeUndefined();
  });

  it('--tenant and --tenant-header: from the flags or SESSIONFLEET_TENANT / SESSIONFLEET_TENANT_HEADER', () => {
    const base = ['--policy', 'p', '--upstream', 'http://127.0.0.1:1'];
    const config = parseAgentConfig([...base, '--tenant', 'acme', '--tenant-header', 'X-Tenant'], {});
    expect(config.tenant).toBe('acme');
    expect(config.tenantHeader).toBe('x-tenant');
    const fromEnv = parseAgentConfig(base, { SESSIONFLEET_TENANT: 'globex', SESSIONFLEET_TENANT_HEADER: 'x-org' });
    expect(fromEnv).toMatchObject({ tenant: 'globex', tenantHeader: 'x-org' });
    expect(parseAgentConfig([...base, '--tenant', 'initech'], { SESSIONFLEET_TENANT: 'globex' }).tenant).toBe(
      'initech',
    );
    const none = parseAgentConfig(base, {});
    expect(none.tenant).toBeUndefined();
    expect(none.tenantHeader).toBeUndefined();
  });

  it('--tenant is a name without whitespace, --tenant-header a header name other than the principal’s', () => {
    const problemsOf = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      configProblems(['--policy', 'p', '--upstream', 'http://127.0.0.1:1', ...args], env);
    expect(problemsOf(['--tenant', 'acme corp', '--tenant-header', 'x tenant'])).toEqual([
      '--tenant-header ("x tenant") must be a valid HTTP header name (letters, digits and !#$%&\'*+-.^_`|~)',
      '--tenant ("acme corp") must be a name of 1-256 characters without whitespace',
    ]);
    expect(problemsOf([], { SESSIONFLEET_TENANT: 'a'.repeat(257) })).toEqual([
      `SESSIONFLEET_TENANT ("${'a'.repeat(257)}") must be a name of 1-256 characters without whitespace`,
    ]);
    expect(problemsOf(['--principal-header', 'X-User', '--tenant-header', 'x-user'])).toEqual([
      '--tenant-header ("x-user") must not be the header naming the principal (--principal-header)',
    ]);
  });

  it('checks the flags against the policy: the upstream scheme, and --tenant under tenant isolation', () => {
    const policyOf = (input: Record<string, unknown>) => {
      const result = validatePolicy(input);
      if (!result.ok) throw new Error('invalid test policy');
      return result.policy;
    };
    const http = parseAgentConfig(['--policy', 'p', '--upstream', 'http://127.0.0.1:1'], {});
    const tenantPolicy = policyOf({ isolation: 'tenant', affinity: { type: 'header', headerName: 'x-session' } });
    expect(checkConfigAgainstPolicy(http, tenantPolicy)).toEqual([
      '--tenant is required (or set SESSIONFLEET_TENANT) by the policy\'s isolation "tenant": an instance serves exactly one tenant, and refuses the others',
    ]);
    expect(checkConfigAgainstPolicy({ ...http, tenant: 'acme' }, tenantPolicy)).toEqual([]);
    expect(checkConfigAgainstPolicy(http, policyOf({ affinity: { type: 'cookie' } }))).toEqual([]);
    // A header cannot carry both the session id and who the caller is.
    const headerPolicy = policyOf({ affinity: { type: 'header', headerName: 'X-Session' } });
    expect(
      checkConfigAgainstPolicy({ ...http, principalHeader: 'x-session', tenantHeader: 'x-tenant' }, headerPolicy),
    ).toEqual([
      '--principal-header ("x-session") must not be the header that carries the session id (affinity.headerName "X-Session")',
    ]);
    expect(checkConfigAgainstPolicy({ ...http, tenantHeader: 'X-SESSION' }, headerPolicy)).toEqual([
      '--tenant-header ("X-SESSION") must not be the header that carries the session id (affinity.headerName "X-Session")',
    ]);
    const tcp = parseAgentConfig(['--policy', 'p', '--upstream', 'tcp://127.0.0.1:1'], {});
    expect(checkConfigAgainstPolicy(tcp, policyOf({ isolation: 'tenant', affinity: { type: 'cookie' } }))).toEqual([
      '--upstream (tcp://127.0.0.1:1) must be http://host:port for affinity.type "cookie"',
      '--tenant is required (or set SESSIONFLEET_TENANT) by the policy\'s isolation "tenant": an instance serves exactly one tenant, and refuses the others',
    ]);
  });

  it('--trusted-proxies: CIDRs where the principal header may come from, only beside --principal-header', () => {
    const base = ['--policy', 'p', '--upstream', 'http://127.0.0.1:1'];
    const header = [...base, '--principal-header', 'x-user'];
    expect(parseAgentConfig([...header, '--trusted-proxies', '10.0.0.0/8, fd00::/8'], {}).trustedProxies).toEqual([
      '10.0.0.0/8',
      'fd00::/8',
    ]);
    expect(parseAgentConfig(header, { SESSIONFLEET_TRUSTED_PROXIES: '192.168.0.0/16' }).trustedProxies).toEqual([
      '192.168.0.0/16',
    ]);
    expect(parseAgentConfig(header, {}).trustedProxies).toBeUndefined();
    const problems = (argv: string[]) => configProblems(argv);
    expect(problems([...header, '--trusted-proxies', '10.0.0.0'])).toEqual([
      '--trusted-proxies ("10.0.0.0") must be comma-separated IPv4 or IPv6 CIDRs such as 10.0.0.0/8,fd00::/8',
    ]);
    expect(problems([...base, '--trusted-proxies', '10.0.0.0/8'])).toEqual([
      '--trusted-proxies needs --principal-header: it says where that header may come from',
    ]);
  });

  it('takes --app-state-dir only beside a different --session-state-dir (ADR 0019)', () => {
    const copilot = ['--policy', 'p', '--upstream', 'tcp://127.0.0.1:4321'];
    const staged = parseAgentConfig([...copilot, '--session-state-dir', '/shared', '--app-state-dir', '/app'], {});
    expect(staged).toMatchObject({ sessionStateDir: '/shared', appStateDir: '/app' });
    expect(staged.warnings).toBeUndefined();
    const problems = (argv: string[]) => configProblems(argv);
    expect(problems([...copilot, '--app-state-dir', '/app'])).toEqual([
      "--app-state-dir needs --session-state-dir: the agent stages session state from the shared directory into the app's",
    ]);
    expect(problems([...copilot, '--session-state-dir', '/shared/', '--app-state-dir', '/shared'])).toEqual([
      '--app-state-dir ("/shared") must not be --session-state-dir: the app\'s directory is private, the shared one is the agent\'s',
    ]);
    const http = parseAgentConfig(
      ['--policy', 'p', '--upstream', 'http://127.0.0.1:3000', '--session-state-dir', '/s'],
      { SESSIONFLEET_APP_STATE_DIR: '/a' },
    );
    expect(http.warnings).toEqual([
      'SESSIONFLEET_APP_STATE_DIR has no effect with an http:// upstream: the agent stages the session state of the Copilot CLI (tcp://) only',
    ]);
  });

  it('JWT mode: --jwt-* flags and env, exclusive with the trusted-header mode, URLs and claims checked', () => {
    const base = ['--policy', 'p', '--upstream', 'http://127.0.0.1:1'];
    const jwt = [...base, '--jwt-issuer', 'https://idp.example.com', '--jwt-audience', 'https://mcp.example.com/mcp'];
    expect(parseAgentConfig(jwt, {}).jwt).toEqual({
      issuer: 'https://idp.example.com',
      audience: 'https://mcp.example.com/mcp',
      principalClaim: 'sub',
    });
    expect(
      parseAgentConfig(base, {
        SESSIONFLEET_JWT_ISSUER: 'https://idp.example.com/realms/a',
        SESSIONFLEET_JWT_AUDIENCE: 'https://mcp.example.com/',
        SESSIONFLEET_JWKS_URL: 'https://idp.example.com/keys',
        SESSIONFLEET_JWT_PRINCIPAL_CLAIM: 'email',
        SESSIONFLEET_JWT_TENANT_CLAIM: 'org',
      }).jwt,
    ).toEqual({
      issuer: 'https://idp.example.com/realms/a',
      audience: 'https://mcp.example.com/',
      jwksUrl: 'https://idp.example.com/keys',
      principalClaim: 'email',
      tenantClaim: 'org',
    });
    const problems = (argv: string[]) => configProblems(argv);
    expect(problems([...jwt, '--principal-header', 'x-user', '--trusted-proxies', '10.0.0.0/8'])).toEqual([
      "--principal-header cannot be used with --jwt-issuer: the principal comes either from a verified bearer token (JWT mode) or from a trusted proxy's header, not both",
      "--trusted-proxies cannot be used with --jwt-issuer: the principal comes either from a verified bearer token (JWT mode) or from a trusted proxy's header, not both",
    ]);
    expect(problems([...base, '--jwt-issuer', 'http://idp.example.com'])).toEqual([
      '--jwt-issuer ("http://idp.example.com") must be an https:// URL (http:// only on a loopback host), without a fragment or query',
      "--jwt-audience is required with --jwt-issuer (or set SESSIONFLEET_JWT_AUDIENCE): the URL clients reach this resource at, which every token's aud must name",
    ]);
    expect(problems([...jwt, '--jwt-tenant-claim', 'sub', '--jwks-url', 'ftp://x'])).toEqual([
      '--jwks-url ("ftp://x") must be an https:// URL (http:// only on a loopback host), without a fragment',
      '--jwt-tenant-claim ("sub") must not be the claim naming the principal',
    ]);
    expect(problems([...base, '--jwt-audience', 'https://mcp.example.com/'])).toEqual([
      '--jwt-audience needs --jwt-issuer (or SESSIONFLEET_JWT_ISSUER): it configures JWT mode',
    ]);
  });

  it('rejects unknown flags clearly', () => {
    expect(() => parseAgentConfig(['--polcy', 'x'], {})).toThrowError(ConfigError);
  });
});
