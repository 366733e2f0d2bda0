/** Writes docs/copilot-methods.md from the method table: `npm run docs:copilot-methods`. */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCopilotMethodsDoc } from './methods-doc.js';

const target = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'copilot-methods.md');
writeFileSync(target, renderCopilotMethodsDoc());
console.log(`wrote ${target}`);
