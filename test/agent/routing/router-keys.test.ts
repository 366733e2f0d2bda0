/**
 * The routing core's rule for MCP 2026 affinity keys (task ids, handles) on a single instance
 * (`LocalCoordinator`, no Redis): a key held here is served synchronously for its creator only;
 * anything else is one `unknown-key` answer. The fleet's half runs in
 * test/agent/fleet/mcp2026-tasks.e2e.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { LocalAffinityKeys } from '../../../agent/fleet/affinity-keys.js';
import { LocalCoordinator } from '../../../agent/fleet/local-coordinator.js';
import { Router } from '../../../agent/routing/index.js';
import { testContext } from '../fleet/helpers.js';

const alice = { principal: 'alice', tenant: 't1' };
const aliceElsewhere = { principal: 'alice', tenant: 't2' };
const bob = { principal: 'bob', tenant: 't1' };
const stay = { signal: new AbortController().signal };
const task = (key: string) => ({ kind: 'task' as const, key });
const handle = (key: string) => ({ kind: 'handle' as const, key });

const closers: Array<() => void> = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

function single(policy: { taskOwnerTtlCapSeconds?: number } = {}) {
  const context = testContext({ instanceId: 'solo', policy: { affinity: { type: 'mcp-streamable-http' } } });
  closers.push(() => context.close());
  const coordinator = new LocalCoordinator(context);
  const router = new Router({
    coordinator,
    sessions: context.sessions,
    instanceId: 'solo',
    policy: { ...context.policy, ...policy },
    purpose: 'http-forward',
    draining: () => false,
  });
  return { router, coordinator };
}

describe('affinity keys in the routing core (single instance)', () => {
  it('serves a task held here for its creator synchronously, and nobody else', async () => {
    const { router } = single();
    await router.learnKey(task('t-1'), alice, 60_000);
    const decision = router.decideKey(task('t-1'), alice, undefined, stay);
    expect(decision).not.toBeInstanceOf(Promise);
    expect(decision).toEqual({ kind: 'serve', adopted: false });
    expect(router.decideKey(task('t-1'), bob, undefined, stay)).toEqual({ kind: 'unknown-key' });
    expect(router.decideKey(task('t-1'), aliceElsewhere, undefined, stay)).toEqual({ kind: 'unknown-key' });
  });

  it('answers a task nobody holds, and a hop for a task not held here, as unknown', async () => {
    const { router } = single();
    expect(await router.decideKey(task('never'), alice, undefined, stay)).toEqual({ kind: 'unknown-key' });
    const hop = { from: 'other', to: 'solo', reservation: undefined } as never;
    expect(await router.decideKey(task('never'), alice, hop, stay)).toEqual({ kind: 'unknown-key' });
  });

  it('serves a first-seen handle here and holds it for its first user', async () => {
    const { router } = single();
    expect(await router.decideKey(handle('h-1'), alice, undefined, stay)).toEqual({ kind: 'serve', adopted: false });
    expect(router.decideKey(handle('h-1'), alice, undefined, stay)).toEqual({ kind: 'serve', adopted: false });
    expect(router.decideKey(handle('h-1'), bob, undefined, stay)).toEqual({ kind: 'unknown-key' });
  });

  it("caps a task's ttlMs (and an unlimited one) by the policy", async () => {
    let now = 1_000;
    const keys = new LocalAffinityKeys(() => now);
    await keys.record('task', 'short', alice, 500);
    now += 499;
    expect(keys.local('task', 'short')).toBeDefined();
    now += 1;
    expect(keys.local('task', 'short')).toBeUndefined();

    const { router, coordinator } = single({ taskOwnerTtlCapSeconds: 1 });
    await router.learnKey(task('capped'), alice, 86_400_000);
    await router.learnKey(task('unlimited'), alice, null);
    const [capped, unlimited] = coordinator.affinityKeys.list();
    expect(capped!.expiresAt - Date.now()).toBeLessThanOrEqual(1_000);
    expect(unlimited!.expiresAt - Date.now()).toBeLessThanOrEqual(1_000);
  });
});
