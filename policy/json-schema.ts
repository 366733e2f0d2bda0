import { z } from 'zod';
import { policyInputSchema } from './schema.js';

export const POLICY_SCHEMA_ID = 'https://sessionfleet.dev/schema/policy.schema.json';

/** The JSON Schema of the policy file, derived from the zod schema (never written by hand). */
export function policyJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(policyInputSchema, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>;
  return { ...schema, $id: POLICY_SCHEMA_ID, title: 'sessionfleet policy' };
}
