import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AFFINITY_TYPES, ISOLATION_MODES, validatePolicy } from '../../policy/index.js';

/**
 * True one time in four. Asynchronous invocation and recycling each rule out half the policies;
 * a fair coin left some seeds with under 100 accepted policies in 3000 (about 1 run in 80).
 */
const rarely = fc.oneof({ arbitrary: fc.constant(false), weight: 3 }, { arbitrary: fc.constant(true), weight: 1 });

/** Policies that are often valid: the known fields with values around their bounds. */
const plausiblePolicy = fc.record(
  {
    isolation: fc.constantFrom(...ISOLATION_MODES),
    affinity: fc.oneof(
      fc.constantFrom(...AFFINITY_TYPES).map((type) => ({ type })),
      fc.record({ type: fc.constant('header'), headerName: fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/) }),
      fc.record({ type: fc.constant('cookie'), cookieName: fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/) }),
      fc.record({ type: fc.constant('mcp-sse'), ssePath: fc.stringMatching(/^\/[a-z]{0,10}$/) }),
    ),
    sessionsPerInstance: fc.integer({ min: 0, max: 201 }),
    concurrencyPerInstance: fc.integer({ min: 0, max: 201 }),
    sessionLifetimeSeconds: fc.integer({ min: 0, max: 30000 }),
    sessionIdleTimeoutSeconds: fc.integer({ min: 0, max: 30000 }),
    minInstances: fc.integer({ min: 1, max: 20 }),
    maxInstances: fc.integer({ min: 1, max: 20 }),
    expiredSessionStatus: fc.integer({ min: 399, max: 500 }),
    evictionPolicy: fc.constantFrom('reject', 'lru'),
    asyncInvocation: rarely,
    recycleAfterSession: rarely,
    instanceVcpu: fc.double({ min: 0.25, max: 8, noNaN: true }),
    collaborative: fc.record({ enabled: fc.boolean() }, { requiredKeys: [] }),
  },
  { requiredKeys: ['affinity'] },
);

describe('policy validation properties', () => {
  it('never throws on arbitrary JSON: it returns errors', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const result = validatePolicy(value);
        expect(typeof result.ok).toBe('boolean');
        if (!result.ok) expect(result.errors.length).toBeGreaterThan(0);
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on objects with the known keys and arbitrary values', () => {
    const keys = [
      'isolation',
      'affinity',
      'sessionsPerInstance',
      'collaborative',
      'sessionAffinityConfig',
      'sessionAffinity',
      'instanceConcurrency',
    ];
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...keys), fc.jsonValue()), (value) => {
        const result = validatePolicy(value);
        for (const e of result.errors) expect(e.message.length).toBeGreaterThan(0);
      }),
      { numRuns: 2000 },
    );
  });

  it('every policy it accepts round-trips through the file format unchanged', () => {
    let accepted = 0;
    fc.assert(
      fc.property(plausiblePolicy, (input) => {
        const first = validatePolicy(input);
        if (!first.ok) return;
        accepted++;
        const reread = validatePolicy(JSON.parse(JSON.stringify(first.policy)));
        expect(reread.ok).toBe(true);
        expect(reread.policy).toEqual(first.policy);
        expect(reread.warnings).toEqual([]);
      }),
      { numRuns: 3000 },
    );
    // The generator must reach the accepting side often enough for the property to mean something.
    expect(accepted).toBeGreaterThan(100);
  });
});
