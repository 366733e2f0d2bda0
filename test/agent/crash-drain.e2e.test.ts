/**
 * The last line of defence, with real processes: an uncaught exception or an unhandled rejection
 * in the agent (raised by a preload, `test/agent/fixtures/inject-fault.mjs`, not by a hook in the
 * agent) is logged with its context; the agent stops taking new sessions, lets a slow request in
 * flight finish, and only then exits non-zero.
 */
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Spawned, spawnAgent, spawnListening, stopAll } from '../helpers/http-agent-process.js';
import { until } from './http/harness.js';

const FIXTURE = 'test/agent/http/fixtures/upstream.ts';
let upstream: Spawned & { url: string };
const client = new Agent({ keepAliveTimeout: 1000 });

beforeAll(async () => {
  upstream = await spawnListening(FIXTURE);
});
afterAll(async () => {
  await client.close();
  await stopAll();
});

describe.each([
  ['uncaught exception', 'exception', 'injected crash (test)'],
  ['unhandled rejection', 'rejection', 'injected rejection (test)'],
])('an %s', (_name, fault, message) => {
  it('drains the request in flight first, refuses new sessions meanwhile, then exits 1', async () => {
    const agent = await spawnAgent({
      policy: { affinity: { type: 'header', headerName: 'x-aff' }, drainTimeoutSeconds: 20 },
      upstream: upstream.url,
      nodeArgs: ['--import', './test/agent/fixtures/inject-fault.mjs'],
      env: { SESSIONFLEET_TEST_FAULT: fault },
    });
    let exitedAt: number | undefined;
    void agent.exited.then(() => {
      exitedAt = performance.now();
    });
    const slow = request(`${agent.url}/slow?ms=2500`, { dispatcher: client, headers: { 'x-aff': 'held' } }).then(
      async (r) => ({ status: r.statusCode, body: await r.body.text(), at: performance.now() }),
    );
    await until(
      async () =>
        /^sessionfleet_inflight_requests\{[^}]*\} 1$/m.test(await (await fetch(`${agent.adminUrl}/metrics`)).text()),
      10_000,
      'the slow request in flight',
    );

    agent.child.kill('SIGWINCH');
    const fatal = JSON.parse(await agent.waitForLine((l) => l.includes('"level":60'))) as Record<string, unknown>;
    expect(fatal).toMatchObject({
      msg: 'uncaught error: draining, then exiting 1 so that the platform restarts the agent',
      instance: 'test-agent',
      inFlight: 1,
      sessions: 1,
      drainTimeoutSeconds: 20,
      err: { message },
    });
    expect((fatal.err as { stack: string }).stack).toContain('inject-fault.mjs');
    await agent.waitForLine((l) => l.includes('"msg":"draining"'));

    // No new work while it drains.
    const late = await request(`${agent.url}/echo`, { dispatcher: client, headers: { 'x-aff': 'latecomer' } });
    expect(late.statusCode).toBe(503);
    expect(((await late.body.json()) as { error: { code: string } }).error.code).toBe('DRAINING');
    expect(exitedAt).toBeUndefined();

    const held = await slow;
    expect(held.status).toBe(200);
    expect(await agent.exited).toBe(1);
    // The answer reached the client before the process ended.
    expect(exitedAt).toBeGreaterThan(held.at);
    expect(agent.logs().map((l) => l.msg)).toContain('agent stopped');
  });
});
