import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { policyJsonSchema, validatePolicy } from '../../policy/index.js';

const shipped = JSON.parse(readFileSync(new URL('../../schema/policy.schema.json', import.meta.url), 'utf8'));

describe('the JSON Schema shipped for editors', () => {
  it('is exactly what the zod schema generates (run `npm run schema` after changing policy/schema.ts)', () => {
    expect(shipped).toEqual(policyJsonSchema());
  });

  it('accepts every policy the validator accepts and normalizes', () => {
    const ajv = new Ajv2020({ strict: false });
    const check = ajv.compile(shipped);
    fc.assert(
      fc.property(
        fc.record({
          isolation: fc.constantFrom('shared', 'tenant'),
          affinity: fc.constantFrom(
            { type: 'mcp-streamable-http' },
            { type: 'cookie' },
            { type: 'header', headerName: 'x-s' },
          ),
          sessionsPerInstance: fc.integer({ min: 1, max: 200 }),
        }),
        (input) => {
          const result = validatePolicy(input);
          expect(result.ok).toBe(true);
          expect(check(input)).toBe(true);
          expect(check(result.policy)).toBe(true);
        },
      ),
    );
  });

  it('rejects what the validator rejects structurally', () => {
    const check = new Ajv2020({ strict: false }).compile(shipped);
    for (const bad of [
      {},
      { affinity: { type: 'sticky' } },
      { affinity: { type: 'header' } },
      { affinity: { type: 'none' }, sessionsPerInstance: 0 },
      { affinity: { type: 'none' }, extra: 1 },
    ]) {
      expect(validatePolicy(bad).ok).toBe(false);
      expect(check(bad)).toBe(false);
    }
  });
});
