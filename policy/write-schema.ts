/** Writes schema/policy.schema.json from the zod schema: `npm run schema`. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { policyJsonSchema } from './json-schema.js';

const target = join(dirname(fileURLToPath(import.meta.url)), '..', 'schema', 'policy.schema.json');
mkdirSync(dirname(target), { recursive: true });
writeFileSync(target, `${JSON.stringify(policyJsonSchema(), null, 2)}\n`);
console.log(`wrote ${target}`);
