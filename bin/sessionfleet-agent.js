#!/usr/bin/env node
// The package's bin: runs the compiled agent. From a checkout, `npm install` builds dist/ (prepare).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/agent/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('sessionfleet-agent: dist/ is missing; run `npm run build` in the package first\n');
  process.exit(1);
}
const { main } = await import(entry.href);
try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  // One line, never a stack trace (exit codes: docs/reference/cli.md).
  process.stderr.write(`sessionfleet-agent: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
