import { describe, expect, it } from 'vitest';
import { parsePolicy, validatePolicy } from '../../policy/index.js';

describe("Function Compute's names (check-policy accepts an existing FC configuration)", () => {
  it('maps a full FC HeaderField configuration, with the affinity config as a JSON string', () => {
    const policy = parsePolicy({
      instanceIsolationMode: 'SHARE',
      instanceConcurrency: 100,
      sessionAffinity: 'HEADER_FIELD',
      sessionAffinityConfig: JSON.stringify({
        sessionConcurrencyPerInstance: 30,
        sessionTTLInSeconds: 21600,
        sessionIdleTimeoutInSeconds: 1800,
        affinityHeaderFieldName: 'x-custom-affinity-header',
        disableSessionIdReuse: true,
      }),
    });
    expect(policy).toMatchObject({
      isolation: 'shared',
      concurrencyPerInstance: 100,
      sessionsPerInstance: 30,
      sessionLifetimeSeconds: 21600,
      sessionIdleTimeoutSeconds: 1800,
      affinity: { type: 'header', headerName: 'x-custom-affinity-header' },
      expiredSessionStatus: 401,
    });
  });

  it.each([
    ['MCP_STREAMABLE', { type: 'mcp-streamable-http' }],
    ['MCP_SSE', { type: 'mcp-sse', ssePath: '/events' }],
    ['GENERATED_COOKIE', { type: 'cookie', cookieName: 'x-fc-cookie-session-id' }],
  ])('maps sessionAffinity %s', (fc, affinity) => {
    const policy = parsePolicy({
      sessionAffinity: fc,
      sessionAffinityConfig: fc === 'MCP_SSE' ? { sseEndpointPath: '/events' } : {},
    });
    expect(policy.affinity).toEqual(affinity);
  });

  it('maps session isolation and accepts the FC names at the top level', () => {
    const policy = parsePolicy({
      instanceIsolationMode: 'SESSION_EXCLUSIVE',
      affinity: { type: 'cookie' },
      sessionTTLInSeconds: 3600,
      sessionIdleTimeoutInSeconds: 600,
    });
    expect(policy).toMatchObject({
      isolation: 'session',
      sessionsPerInstance: 1,
      sessionLifetimeSeconds: 3600,
      sessionIdleTimeoutSeconds: 600,
    });
  });

  it('points errors at the FC name the user wrote', () => {
    const result = validatePolicy({
      sessionAffinity: 'HEADER_FIELD',
      sessionAffinityConfig: { sessionConcurrencyPerInstance: 300, affinityHeaderFieldName: 'x a' },
    });
    expect(result.errors.map((e) => e.message)).toEqual([
      'sessionAffinityConfig.affinityHeaderFieldName ("x a") must be a valid HTTP header name (letters, digits and !#$%&\'*+-.^_`|~)',
      'sessionAffinityConfig.sessionConcurrencyPerInstance (300) must be between 1 and 200',
    ]);
  });

  it('refuses the same setting under both names', () => {
    expect(
      validatePolicy({ affinity: { type: 'cookie' }, sessionsPerInstance: 5, sessionConcurrencyPerInstance: 6 }).errors,
    ).toEqual([
      {
        path: 'sessionConcurrencyPerInstance',
        message:
          "sessionConcurrencyPerInstance (Function Compute's name for sessionsPerInstance) and sessionsPerInstance are both set: keep one",
      },
    ]);
  });

  it('rejects unknown FC values and keys with their names', () => {
    expect(
      validatePolicy({
        sessionAffinity: 'STICKY',
        instanceIsolationMode: 'SOLO',
        sessionAffinityConfig: { ttl: 1 },
      }).errors.map((e) => e.message),
    ).toEqual([
      'instanceIsolationMode ("SOLO") must be one of "SHARE", "REQUEST_EXCLUSIVE", "SESSION_EXCLUSIVE"',
      'sessionAffinity ("STICKY") must be one of "MCP_STREAMABLE", "MCP_SSE", "HEADER_FIELD", "GENERATED_COOKIE", "NONE"',
      'sessionAffinityConfig.ttl is not a known Function Compute setting',
      'affinity is required',
    ]);
  });

  it('rejects an affinity config string that is not JSON', () => {
    expect(
      validatePolicy({ sessionAffinity: 'MCP_SSE', sessionAffinityConfig: '{oops' }).errors.map((e) => e.message),
    ).toEqual(['sessionAffinityConfig ("{oops") must be an object or a JSON string of one']);
  });

  it('warns that expired session ids are never reused', () => {
    expect(
      validatePolicy({
        sessionAffinity: 'GENERATED_COOKIE',
        sessionAffinityConfig: { disableSessionIdReuse: false },
      }).warnings.map((w) => w.message),
    ).toEqual([
      'sessionAffinityConfig.disableSessionIdReuse (false) is ignored: sessionfleet never reuses an expired session id, the client gets the expired-session status and starts a new session',
    ]);
  });

  it('request isolation from FC keeps the FC concurrency warning', () => {
    const result = validatePolicy({
      instanceIsolationMode: 'REQUEST_EXCLUSIVE',
      sessionAffinity: 'NONE',
      instanceConcurrency: 10,
    });
    expect(result.ok).toBe(true);
    expect(result.policy?.concurrencyPerInstance).toBe(1);
    expect(result.warnings.map((w) => w.message)).toEqual([
      'concurrencyPerInstance (10) is ignored under request isolation: it is forced to 1',
    ]);
  });
});
