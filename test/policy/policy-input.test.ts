import { describe, expect, expectTypeOf, it } from 'vitest';
import type { z } from 'zod';
import { validatePolicy } from '../../policy/index.js';
import type { limitsSchema } from '../../policy/limits.js';
import type { AffinityInput, CollaborativeInput, LimitsInput, PolicyInput } from '../../policy/policy-input.js';
import { CROSS_FIELD_RULES, rulesFor } from '../../policy/rule-catalogue.js';
import type { affinitySchema, collaborativeSchema, policyInputSchema } from '../../policy/schema.js';

describe('the generated, documented PolicyInput', () => {
  // Checked by `npm run typecheck`: the TSDoc'd interfaces accept exactly what the zod schema accepts.
  it('is the zod schema input type, both ways', () => {
    expectTypeOf<PolicyInput>().toExtend<z.input<typeof policyInputSchema>>();
    expectTypeOf<z.input<typeof policyInputSchema>>().toExtend<PolicyInput>();
    expectTypeOf<AffinityInput>().toExtend<z.input<typeof affinitySchema>>();
    expectTypeOf<z.input<typeof affinitySchema>>().toExtend<AffinityInput>();
    expectTypeOf<CollaborativeInput>().toExtend<z.input<typeof collaborativeSchema>>();
    expectTypeOf<z.input<typeof collaborativeSchema>>().toExtend<CollaborativeInput>();
    expectTypeOf<LimitsInput>().toExtend<z.input<typeof limitsSchema>>();
    expectTypeOf<NonNullable<z.input<typeof limitsSchema>>>().toExtend<LimitsInput>();
    expectTypeOf<keyof PolicyInput>().toEqualTypeOf<keyof z.input<typeof policyInputSchema>>();
  });
});

describe('the catalogue of rules between fields', () => {
  it.each(CROSS_FIELD_RULES.map((r) => [r.rule, r] as const))('is enforced: %s', (_, rule) => {
    const result = validatePolicy(rule.violation);
    expect(result.ok).toBe(false);
    expect(result.errors.map((e) => e.path)).toContain(rule.fields[0]);
  });

  it('names each rule under every field it constrains', () => {
    expect(rulesFor('sessionsPerInstance').map((r) => r.fields)).toContainEqual([
      'sessionsPerInstance',
      'concurrencyPerInstance',
    ]);
    expect(rulesFor('concurrencyPerInstance')).toHaveLength(1);
  });
});
