import { describe, expect, it } from 'vitest';
import {
  DEFAULTS,
  type Policy,
  PolicyError,
  parsePolicy,
  validatePolicy,
  validatePolicyText,
} from '../../policy/index.js';

function errorsOf(input: unknown): string[] {
  const result = validatePolicy(input);
  return result.errors.map((e) => e.message);
}

function warningsOf(input: unknown): string[] {
  return validatePolicy(input).warnings.map((w) => w.message);
}

const mcp = { type: 'mcp-streamable-http' } as const;

describe('defaults (SPEC.md §4)', () => {
  it('fills in every default around the only required field', () => {
    const result = validatePolicy({ affinity: mcp });
    expect(result).toEqual({
      ok: true,
      errors: [],
      warnings: [],
      policy: {
        isolation: 'shared',
        affinity: { type: 'mcp-streamable-http' },
        sessionsPerInstance: 20,
        concurrencyPerInstance: 200,
        sessionLifetimeSeconds: 21600,
        sessionIdleTimeoutSeconds: 1800,
        minInstances: 1,
        maxInstances: 10,
        expiredSessionStatus: 404,
        evictionPolicy: 'reject',
        drainTimeoutSeconds: 30,
        asyncInvocation: false,
        sharedSessionState: false,
        recycleAfterSession: false,
        failOpen: false,
        placementWaitSeconds: 5,
        limits: { streamsPerInstance: 100, evictIdleAfterSeconds: 120 },
      } satisfies Policy,
    });
  });

  it.each([
    ['mcp-streamable-http', 404],
    ['mcp-sse', 404],
    ['copilot-jsonrpc', 404],
    ['none', 404],
    ['cookie', 401],
  ] as const)('expired-session status for %s affinity defaults to %i', (type, status) => {
    expect(parsePolicy({ affinity: { type } }).expiredSessionStatus).toBe(status);
  });

  it('expired-session status for header affinity defaults to 401', () => {
    expect(
      parsePolicy({ affinity: { type: 'header', headerName: 'x-custom-affinity-header' } }).expiredSessionStatus,
    ).toBe(401);
  });

  it('an explicit expired-session status wins over the default', () => {
    expect(parsePolicy({ affinity: { type: 'cookie' }, expiredSessionStatus: 410 }).expiredSessionStatus).toBe(410);
  });

  it('cookie affinity defaults its cookie name to the seed one', () => {
    expect(parsePolicy({ affinity: { type: 'cookie' } }).affinity).toEqual({
      type: 'cookie',
      cookieName: 'x-fc-cookie-session-id',
    });
  });

  it('mcp-sse affinity defaults its SSE path to /sse', () => {
    expect(parsePolicy({ affinity: { type: 'mcp-sse' } }).affinity).toEqual({ type: 'mcp-sse', ssePath: '/sse' });
  });

  it('collaborative settings get their defaults when the object is present', () => {
    expect(parsePolicy({ affinity: mcp, collaborative: {} }).collaborative).toEqual({
      enabled: true,
      lockTtlSeconds: DEFAULTS.lockTtlSeconds,
      lockWaitSeconds: DEFAULTS.lockWaitSeconds,
    });
  });

  it('accepts the example of SPEC.md §8 unchanged', () => {
    const example = {
      isolation: 'shared',
      affinity: { type: 'mcp-streamable-http' },
      sessionsPerInstance: 20,
      concurrencyPerInstance: 200,
      sessionLifetimeSeconds: 21600,
      sessionIdleTimeoutSeconds: 1800,
      maxInstances: 10,
      expiredSessionStatus: 404,
    };
    const policy = parsePolicy(example);
    expect(policy).toMatchObject(example);
  });

  it('ignores a $schema reference for editors', () => {
    expect(parsePolicy({ $schema: './policy.schema.json', affinity: mcp })).not.toHaveProperty('$schema');
  });
});

describe('ranges and types (SPEC.md §4)', () => {
  it.each([
    [{ sessionsPerInstance: 300 }, 'sessionsPerInstance (300) must be between 1 and 200'],
    [{ sessionsPerInstance: 0 }, 'sessionsPerInstance (0) must be between 1 and 200'],
    [{ sessionsPerInstance: 2.5 }, 'sessionsPerInstance (2.5) must be a whole number'],
    [{ sessionsPerInstance: '20' }, 'sessionsPerInstance ("20") must be a number'],
    [{ concurrencyPerInstance: 201 }, 'concurrencyPerInstance (201) must be between 1 and 200'],
    [{ sessionLifetimeSeconds: 0 }, 'sessionLifetimeSeconds (0) must be between 1 and 2592000'],
    [{ sessionIdleTimeoutSeconds: -1 }, 'sessionIdleTimeoutSeconds (-1) must be between 0 and 2592000'],
    [{ maxInstances: 0 }, 'maxInstances (0) must be between 1 and 1000'],
    [{ minInstances: 1001 }, 'minInstances (1001) must be between 1 and 1000'],
    [{ expiredSessionStatus: 500 }, 'expiredSessionStatus (500) must be between 400 and 499'],
    [{ isolation: 'solo' }, 'isolation ("solo") must be one of "shared", "session", "request", "tenant"'],
    [{ evictionPolicy: 'fifo' }, 'evictionPolicy ("fifo") must be one of "reject", "lru"'],
    [{ failOpen: 'yes' }, 'failOpen ("yes") must be true or false'],
    [{ drainTimeoutSeconds: 3601 }, 'drainTimeoutSeconds (3601) must be between 0 and 3600'],
    [{ placementWaitSeconds: 301 }, 'placementWaitSeconds (301) must be between 0 and 300'],
    [{ sessionsPerPrincipal: 0 }, 'sessionsPerPrincipal (0) must be between 1 and 1000000'],
    [{ instanceVcpu: 0 }, 'instanceVcpu (0) must be between 0.001 and 1024'],
    [{ collaborative: { lockTtlSeconds: 0 } }, 'collaborative.lockTtlSeconds (0) must be between 1 and 3600'],
    [{ collaborative: true }, 'collaborative (true) must be an object'],
  ])('%j is rejected with its rule', (fields, message) => {
    expect(errorsOf({ affinity: mcp, ...fields })).toEqual([message]);
  });

  it('requires affinity', () => {
    expect(errorsOf({})).toEqual(['affinity is required']);
  });

  it('rejects an affinity that is not an object', () => {
    expect(errorsOf({ affinity: 'header' })).toEqual([
      'affinity ("header") must be an object such as {"type": "mcp-streamable-http"}',
    ]);
  });

  it('rejects an unknown affinity type, listing the known ones', () => {
    expect(errorsOf({ affinity: { type: 'sticky' } })).toEqual([
      'affinity.type ("sticky") must be one of "mcp-streamable-http", "mcp-sse", "header", "cookie", "copilot-jsonrpc", "none"',
    ]);
  });

  it('requires an affinity type', () => {
    expect(errorsOf({ affinity: {} })).toEqual([
      'affinity.type is required: one of "mcp-streamable-http", "mcp-sse", "header", "cookie", "copilot-jsonrpc", "none"',
    ]);
  });

  it('requires headerName for header affinity', () => {
    expect(errorsOf({ affinity: { type: 'header' } })).toEqual(['affinity.headerName is required']);
  });

  it.each([
    ['', 'affinity.headerName ("") must not be empty'],
    [
      'x session',
      'affinity.headerName ("x session") must be a valid HTTP header name (letters, digits and !#$%&\'*+-.^_`|~)',
    ],
    ['Cookie', 'affinity.headerName ("Cookie") is reserved: the agent or HTTP itself uses that header'],
    ['mcp-session-id', 'affinity.headerName ("mcp-session-id") is reserved: the agent or HTTP itself uses that header'],
    ['a'.repeat(129), `affinity.headerName ("${'a'.repeat(56)}...) must be at most 128 characters`],
  ])('rejects header name %j', (headerName, message) => {
    expect(errorsOf({ affinity: { type: 'header', headerName } })).toEqual([message]);
  });

  it('rejects a cookie name with a separator', () => {
    expect(errorsOf({ affinity: { type: 'cookie', cookieName: 'a=b' } })).toEqual([
      'affinity.cookieName ("a=b") must be a valid cookie name (letters, digits and !#$%&\'*+-.^_`|~)',
    ]);
  });

  it('rejects an SSE path that is not an absolute path', () => {
    expect(errorsOf({ affinity: { type: 'mcp-sse', ssePath: 'sse?x=1' } })).toEqual([
      'affinity.ssePath ("sse?x=1") must be an absolute URL path such as "/sse" (no query string, no spaces)',
    ]);
  });

  it('rejects a setting that belongs to another affinity type', () => {
    expect(errorsOf({ affinity: { type: 'cookie', headerName: 'x-a' } })).toEqual([
      'affinity.headerName is not a setting of affinity type "cookie" (it belongs to "header")',
    ]);
  });

  it('rejects unknown fields and suggests the closest name', () => {
    expect(errorsOf({ affinity: mcp, sessionPerInstance: 3, colour: 'red' })).toEqual([
      'sessionPerInstance is not a known field (did you mean sessionsPerInstance?)',
      'colour is not a known field',
    ]);
  });

  it.each([
    [[], 'the policy must be a JSON object, not an array'],
    [null, 'the policy must be a JSON object, not null'],
    ['shared', 'the policy must be a JSON object, not a string'],
    [42, 'the policy must be a JSON object, not a number'],
  ])('rejects a policy that is %j', (input, message) => {
    expect(errorsOf(input)).toEqual([message]);
  });

  it('reports a JSON syntax error with its position instead of throwing', () => {
    const result = validatePolicyText('{"affinity": ');
    expect(result.ok).toBe(false);
    expect(result.errors[0]?.message).toMatch(/^the policy is not valid JSON: /);
  });
});

describe('the rules of SPEC.md §2', () => {
  it('request isolation and session isolation cannot both be enabled', () => {
    expect(errorsOf({ isolation: ['request', 'session'], affinity: { type: 'none' } })).toEqual([
      'request isolation and session isolation cannot both be enabled',
    ]);
  });

  it('isolation must be a single mode', () => {
    expect(errorsOf({ isolation: ['shared'], affinity: mcp })).toEqual([
      'isolation (["shared"]) must be a single mode, not a list',
    ]);
  });

  it('request isolation cannot be combined with session affinity', () => {
    expect(errorsOf({ isolation: 'request', affinity: { type: 'cookie' } })).toEqual([
      'request isolation cannot be combined with session affinity (affinity.type is "cookie"); use affinity.type "none"',
    ]);
  });

  it('request isolation forces concurrency 1, with a warning when the user asked for more', () => {
    const result = validatePolicy({ isolation: 'request', affinity: { type: 'none' }, concurrencyPerInstance: 50 });
    expect(result.ok).toBe(true);
    expect(result.policy?.concurrencyPerInstance).toBe(1);
    expect(result.policy?.sessionsPerInstance).toBe(1);
    expect(result.warnings.map((w) => w.message)).toEqual([
      'concurrencyPerInstance (50) is ignored under request isolation: it is forced to 1',
    ]);
  });

  it('request isolation with the default concurrency warns about nothing', () => {
    expect(warningsOf({ isolation: 'request', affinity: { type: 'none' } })).toEqual([]);
  });

  it('request isolation warns about an explicit sessionsPerInstance above 1', () => {
    expect(warningsOf({ isolation: 'request', affinity: { type: 'none' }, sessionsPerInstance: 5 })).toEqual([
      'sessionsPerInstance (5) is ignored under request isolation: it is forced to 1',
    ]);
  });

  it('session isolation implies affinity', () => {
    expect(errorsOf({ isolation: 'session', affinity: { type: 'none' } })).toEqual([
      'session isolation requires session affinity: affinity.type must be "mcp-streamable-http", "mcp-sse", "header", "cookie" or "copilot-jsonrpc", not "none"',
    ]);
  });

  it('session isolation forces one session per instance', () => {
    expect(parsePolicy({ isolation: 'session', affinity: mcp }).sessionsPerInstance).toBe(1);
    expect(errorsOf({ isolation: 'session', affinity: mcp, sessionsPerInstance: 5 })).toEqual([
      'sessionsPerInstance (5) cannot be changed under session isolation: it is always 1',
    ]);
    expect(errorsOf({ isolation: 'session', affinity: mcp, sessionsPerInstance: 1 })).toEqual([]);
  });

  it.each(['session', 'request'] as const)('%s isolation requires at least 2 vCPU', (isolation) => {
    const affinity = isolation === 'session' ? mcp : { type: 'none' };
    expect(errorsOf({ isolation, affinity, instanceVcpu: 1.5 })).toEqual([
      `${isolation} isolation requires an instance with at least 2 vCPU (instanceVcpu is 1.5)`,
    ]);
    expect(errorsOf({ isolation, affinity, instanceVcpu: 2 })).toEqual([]);
  });

  it('shared mode has no vCPU minimum', () => {
    expect(errorsOf({ affinity: mcp, instanceVcpu: 0.25 })).toEqual([]);
  });

  it('sessions per instance must not exceed concurrency per instance', () => {
    expect(errorsOf({ affinity: mcp, sessionsPerInstance: 30, concurrencyPerInstance: 20 })).toEqual([
      'sessionsPerInstance (30) must not exceed concurrencyPerInstance (20)',
    ]);
    expect(errorsOf({ affinity: mcp, sessionsPerInstance: 20, concurrencyPerInstance: 20 })).toEqual([]);
  });

  it('affinity is not available for asynchronous invocations', () => {
    expect(errorsOf({ affinity: mcp, asyncInvocation: true })).toEqual([
      'affinity is not available for asynchronous (queued) invocations (asyncInvocation is true, affinity.type is "mcp-streamable-http")',
    ]);
    expect(errorsOf({ affinity: { type: 'none' }, asyncInvocation: true })).toEqual([]);
  });

  it('session isolation is not available for asynchronous invocations', () => {
    expect(errorsOf({ isolation: 'session', affinity: mcp, asyncInvocation: true })).toEqual([
      'affinity is not available for asynchronous (queued) invocations (asyncInvocation is true, affinity.type is "mcp-streamable-http")',
      'session isolation is not available for asynchronous (queued) invocations (asyncInvocation is true)',
    ]);
  });

  it('the idle timeout must not exceed the lifetime', () => {
    expect(errorsOf({ affinity: mcp, sessionLifetimeSeconds: 600, sessionIdleTimeoutSeconds: 601 })).toEqual([
      'sessionIdleTimeoutSeconds (601) must not exceed sessionLifetimeSeconds (600)',
    ]);
  });

  it('minInstances must not exceed maxInstances', () => {
    expect(errorsOf({ affinity: mcp, minInstances: 5, maxInstances: 4 })).toEqual([
      'minInstances (5) must not exceed maxInstances (4)',
    ]);
  });

  it('recycling after the session needs session isolation', () => {
    expect(errorsOf({ affinity: mcp, recycleAfterSession: true })).toEqual([
      'recycleAfterSession needs session isolation (isolation is "shared")',
    ]);
    expect(errorsOf({ isolation: 'session', affinity: mcp, recycleAfterSession: true })).toEqual([]);
  });

  it('collaborative sessions need affinity and shared instances', () => {
    expect(errorsOf({ affinity: { type: 'none' }, collaborative: {} })).toEqual([
      'collaborative sessions need session affinity (affinity.type is "none")',
    ]);
    expect(errorsOf({ isolation: 'session', affinity: mcp, collaborative: {} })).toEqual([
      'collaborative sessions cannot be combined with session isolation',
    ]);
    expect(errorsOf({ affinity: { type: 'none' }, collaborative: { enabled: false } })).toEqual([]);
  });

  it('tenant isolation accepts any affinity', () => {
    expect(errorsOf({ isolation: 'tenant', affinity: { type: 'copilot-jsonrpc' } })).toEqual([]);
  });

  it('reports every violation at once, structural and cross-field together', () => {
    expect(
      errorsOf({
        isolation: 'request',
        affinity: { type: 'header', headerName: 'x a' },
        sessionsPerInstance: 300,
        sessionLifetimeSeconds: 100,
        sessionIdleTimeoutSeconds: 200,
        bogus: 1,
      }),
    ).toEqual([
      'affinity.headerName ("x a") must be a valid HTTP header name (letters, digits and !#$%&\'*+-.^_`|~)',
      'sessionsPerInstance (300) must be between 1 and 200',
      'bogus is not a known field',
      'request isolation cannot be combined with session affinity (affinity.type is "header"); use affinity.type "none"',
      'sessionIdleTimeoutSeconds (200) must not exceed sessionLifetimeSeconds (100)',
    ]);
  });

  it('parsePolicy throws a PolicyError that lists every violation', () => {
    expect(() => parsePolicy({ affinity: mcp, sessionsPerInstance: 0, maxInstances: 0 })).toThrowError(
      new PolicyError([
        { path: 'sessionsPerInstance', message: 'sessionsPerInstance (0) must be between 1 and 200' },
        { path: 'maxInstances', message: 'maxInstances (0) must be between 1 and 1000' },
      ]),
    );
    try {
      parsePolicy({ affinity: mcp, sessionsPerInstance: 0 });
    } catch (error) {
      expect((error as PolicyError).message).toBe(
        'invalid policy:\n  - sessionsPerInstance (0) must be between 1 and 200',
      );
    }
  });
});
