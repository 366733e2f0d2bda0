/**
 * `npm run conformance`: the official MCP conformance suite against the reference server direct,
 * through one agent and through two agents of one fleet behind a round-robin balancer, for
 * 2025-11-25 and 2026-07-28; prints the table scenario × set-up and every difference from direct
 * (exit 1 when there is one that `test/conformance/expected-failures.ts` does not list). Starts a
 * private redis-server. `--out FILE` also writes the table (markdown) there.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { compare, ensureSuite, runAll, startSetups } from '../test/conformance/harness.js';
import { stopAll } from '../test/helpers/http-agent-process.js';
import { startRedisServer } from '../test/helpers/redis-server.js';

const { values } = parseArgs({ options: { out: { type: 'string' } } });
const started = Date.now();
const suite = await ensureSuite();
const redis = await startRedisServer();
let status = 1;
try {
  const setups = await startSetups(redis.url);
  try {
    const { results, seconds } = await runAll(suite, setups, (line) => console.error(line));
    const { table, problems } = compare(results);
    const timing = `suite ${suite.version}; suite time: direct ${seconds.direct.toFixed(0)} s, one agent ${seconds['one agent'].toFixed(0)} s, two agents ${seconds['two agents'].toFixed(0)} s; total ${((Date.now() - started) / 1000).toFixed(0)} s`;
    console.log(`${table}\n\n${timing}`);
    if (values.out) writeFileSync(values.out, `${table}\n\n${timing}\n`);
    for (const problem of problems) console.log(`DIFFERENT FROM DIRECT: ${problem}`);
    status = problems.length === 0 ? 0 : 1;
  } finally {
    await setups.close();
  }
} finally {
  await stopAll();
  await redis.stop();
}
process.exit(status);
