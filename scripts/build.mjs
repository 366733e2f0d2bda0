// `npm run build`: the ESM build (dist/) for `import` and the agent, then the CommonJS build
// (dist/cjs/) of the construct library and the policy model for `require` and for
// `moduleResolution: node10` projects such as the one `cdktf init --template=typescript` creates.
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
rmSync('dist', { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
// The ESM build has just type-checked these same sources; the CommonJS build only re-emits them
// (the output is identical with and without checking), at a third of the CPU time.
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.cjs.json', '--noCheck'], { stdio: 'inherit' });
// The package is "type": "module"; this marker makes Node and TypeScript read dist/cjs/**/*.js
// and its .d.ts files as CommonJS.
writeFileSync('dist/cjs/package.json', `${JSON.stringify({ type: 'commonjs' })}\n`);
