/**
 * What JWT mode costs on the HTTP front's hot path, as ratios against the trusted-header mode
 * measured in the same run: one in-process agent per mode in front of one loopback upstream,
 * header affinity, 20 sessions (one principal each), autocannon at full speed.
 *
 *   - header: `--principal-header x-user` (the baseline);
 *   - jwt, cached: a bearer JWT per session, verified once and then answered from the agent's
 *     verified-token cache (what a client's second and later requests see);
 *   - jwt, uncached: the same tokens with the cache off, so every request verifies an ES256
 *     signature (the worst case: every request a token the agent has not seen).
 *
 * Run with `npx tsx bench/jwt-mode.ts [--duration 3] [--rounds 3] [--connections 20]`; the
 * medians and the ratios are printed. Loopback only; the issuer runs in the same process.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { startTestAgent, type TestAgent } from '../test/agent/http/harness.js';
import { startIssuer } from '../test/helpers/oauth-issuer.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '20' },
  },
});
const DURATION = Number(values.duration);
const ROUNDS = Number(values.rounds);
const CONNECTIONS = Number(values.connections);
const SESSIONS = 20;
const POLICY = { affinity: { type: 'header', headerName: 'x-session' }, sessionsPerInstance: 50 };
const AUDIENCE = 'https://bench.example/';

const upstream = createServer((_req, res) => res.end('ok'));
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
const issuer = await startIssuer();
const tokens = await Promise.all(
  Array.from({ length: SESSIONS }, (_, i) =>
    issuer.sign({ sub: `user-${i}`, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 3600 }),
  ),
);
const jwtArgs = ['--jwt-issuer', issuer.issuer, '--jwt-audience', AUDIENCE, '--jwks-url', issuer.jwksUrl];

const targets: Array<{ name: string; agent: TestAgent; headers: (n: number) => Record<string, string> }> = [
  {
    name: 'header',
    agent: await startTestAgent(POLICY, upstreamUrl, ['--principal-header', 'x-user'], { logLevel: 'warn' }),
    headers: (n) => ({ 'x-session': `s-${n}`, 'x-user': `user-${n}` }),
  },
  {
    name: 'jwt, cached',
    agent: await startTestAgent(POLICY, upstreamUrl, jwtArgs, { logLevel: 'warn' }),
    headers: (n) => ({ 'x-session': `s-${n}`, authorization: `Bearer ${tokens[n]}` }),
  },
  {
    name: 'jwt, uncached',
    agent: await startTestAgent(POLICY, upstreamUrl, jwtArgs, { logLevel: 'warn', jwt: { verifiedCacheMs: 0 } }),
    headers: (n) => ({ 'x-session': `s-${n}`, authorization: `Bearer ${tokens[n]}` }),
  },
];

async function measure(target: (typeof targets)[number]): Promise<number> {
  let next = 0;
  const result = await autocannon({
    url: `${target.agent.url}/bench`,
    connections: CONNECTIONS,
    duration: DURATION,
    setupClient: (client) => client.setHeaders(target.headers(next++ % SESSIONS)),
  });
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${target.name}: ${result.non2xx} non-2xx answers`);
  return result.requests.average;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rates = new Map(targets.map((t) => [t.name, [] as number[]]));
for (const target of targets) await measure({ ...target }); // warm-up: sessions created, tokens cached
for (let round = 0; round < ROUNDS; round++) {
  for (const target of targets) rates.get(target.name)!.push(await measure(target));
}
const baseline = median(rates.get('header')!);
console.log(`JWT mode on the HTTP front: ${ROUNDS} rounds of ${DURATION} s, ${CONNECTIONS} connections, medians`);
for (const target of targets) {
  const rps = median(rates.get(target.name)!);
  console.log(`${target.name.padEnd(14)} ${rps.toFixed(0).padStart(7)} req/s   ${(rps / baseline).toFixed(2)}× header`);
}
for (const target of targets) await target.agent.stop();
upstream.close();
await issuer.close();
