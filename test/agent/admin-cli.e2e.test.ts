/**
 * `sessionfleet-agent admin …` as an operator runs it: the real CLI process against a real
 * two-agent fleet (agent processes, a real redis-server, recording upstreams), tables by default,
 * `--json` for scripts, and the documented exit codes for every kind of failure.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentProcess, stopAll } from '../helpers/http-agent-process.js';
import { freePort } from '../helpers/redis-server.js';
import { run } from '../helpers/run.js';
import { spawnMembers } from './fleet/helpers.js';
import { startUpstream, type Upstream } from './http/fixtures/upstream.js';

const ADMIN_TOKEN = 'admin-token-cli-5d1e07';
const IDS = ['a', 'b'] as const;
type Id = (typeof IDS)[number];
const POLICY = { affinity: { type: 'header', headerName: 'x-session' }, sessionsPerInstance: 5, maxInstances: 2 };

const services = {} as Record<Id, Upstream>;
let agents: Record<Id, AgentProcess>;

beforeAll(async () => {
  await Promise.all(IDS.map(async (id) => (services[id] = await startUpstream())));
  ({ agents } = await spawnMembers({
    ids: IDS,
    policy: POLICY,
    upstream: (id) => services[id].url,
    redisUrl: inject('redisUrl'),
    adminToken: ADMIN_TOKEN,
    extraArgs: ['--principal-header', 'x-user'],
  }));
  // alice's session through a (held by a), bob's through b (held by b).
  for (const [via, user, id] of [
    ['a', 'alice', 'cli-session-alice'],
    ['b', 'bob', 'cli-session-bob'],
  ] as const) {
    const response = await fetch(`${agents[via].url}/echo`, {
      method: 'POST',
      headers: { 'x-session': id, 'x-user': user, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(response.status).toBe(200);
  }
}, 60_000);

afterAll(async () => {
  await stopAll();
  await Promise.all(Object.values(services).map((s) => s.close()));
});

function admin(args: readonly string[], env: NodeJS.ProcessEnv = {}) {
  return run(process.execPath, ['--import', 'tsx', 'agent/cli.ts', 'admin', ...args], {
    env: { SESSIONFLEET_ADMIN_URL: '', SESSIONFLEET_ADMIN_TOKEN: '', ...env },
    timeoutMs: 30_000,
  });
}
const via = (id: Id) => ['--admin-url', agents[id].adminUrl, '--admin-token', ADMIN_TOKEN];

describe('sessionfleet-agent admin', () => {
  it('fleet: every instance with its load, as a table, through any agent', async () => {
    const result = await admin(['fleet', ...via('b')]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(/^INSTANCE\s+STATE\s+SESSIONS\s+DRAINING\s+IN FLIGHT\s+LEASE\s+ADVERTISE$/);
    expect(lines.find((l) => l.startsWith('a '))).toMatch(/^a\s+alive\s+1\/5\s+no\s/);
    expect(lines.find((l) => l.startsWith('b *'))).toMatch(/^b \*\s+alive\s+1\/5\s+no\s/);
    expect(result.stdout).toContain('2 live instances, 2/10 sessions; * = b, which answered: ready');
  });

  it('sessions: the whole fleet, filtered by principal, and as JSON for scripts', async () => {
    const all = await admin(['sessions', ...via('a')]);
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/^cli-session-alice\s+a\s+alice\s/m);
    expect(all.stdout).toMatch(/^cli-session-bob\s+b\s+bob\s/m);
    expect(all.stdout).toContain('2 sessions');

    const bobs = await admin(['sessions', '--principal', 'bob', '--json', ...via('a')]);
    expect(bobs.code).toBe(0);
    const body = JSON.parse(bobs.stdout) as { count: number; sessions: Array<{ id: string; owner: string }> };
    expect(body.count).toBe(1);
    expect(body.sessions[0]).toMatchObject({ id: 'cli-session-bob', owner: 'b', principal: 'bob' });
  });

  it('kill: ends a session on its owner through another agent; afterwards it is not found (exit 1)', async () => {
    const killed = await admin(['kill', 'cli-session-alice', ...via('b')]);
    expect(killed.stderr).toBe('');
    expect(killed.code).toBe(0);
    expect(killed.stdout).toBe('ended cli-session-alice (on a)\n');

    const gone = await admin(['session', 'cli-session-alice', ...via('a')]);
    expect(gone.code).toBe(1);
    expect(gone.stdout).toBe('');
    expect(gone.stderr).toBe(
      'sessionfleet-agent admin: the agent refused: SESSION_NOT_FOUND: no session "cli-session-alice" in the fleet: start a new session\n',
    );
  });

  it('takes the URL and token from the environment', async () => {
    const result = await admin(['session', 'cli-session-bob'], {
      SESSIONFLEET_ADMIN_URL: agents.a.adminUrl,
      SESSIONFLEET_ADMIN_TOKEN: ADMIN_TOKEN,
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^owner\s+b$/m);
  });

  it('says unauthorised (exit 4), unreachable (exit 3) and usage (exit 2) on one line each', async () => {
    const wrong = await admin(['fleet', '--admin-url', agents.a.adminUrl, '--admin-token', 'not-the-token']);
    expect(wrong.code).toBe(4);
    expect(wrong.stderr).toMatch(
      /^sessionfleet-agent admin: not authorised by http:\/\/127\.0\.0\.1:\d+\/ \(UNAUTHENTICATED: .*\); give the agent's admin token with --admin-token or SESSIONFLEET_ADMIN_TOKEN\n$/,
    );

    const closed = await admin(['fleet', '--admin-url', `http://127.0.0.1:${await freePort()}`]);
    expect(closed.code).toBe(3);
    expect(closed.stderr).toMatch(
      /^sessionfleet-agent admin: cannot reach the agent's admin API at http:\/\/127\.0\.0\.1:\d+\/ \(ECONNREFUSED\)\n$/,
    );

    for (const [args, message] of [
      [
        ['frobnicate'],
        'unknown command "frobnicate" (the commands are fleet, sessions, session, kill, drain, tasks, kill-task, streams, kill-stream)',
      ],
      [['dran', 'a'], 'unknown command "dran" (did you mean drain?)'],
      [['sessions', '--princpal', 'x'], 'unknown flag --princpal (did you mean --principal?)'],
      [['drain'], 'admin drain takes one instance id (see admin fleet)'],
      [['kill'], 'admin kill takes one session id'],
      [
        ['fleet', '--principal', 'x'],
        "--principal is an option of 'admin sessions', 'admin tasks', 'admin streams', 'admin kill-task', 'admin kill-stream', not of 'admin fleet'",
      ],
      [['fleet', '--instance', 'x'], "--instance is an option of 'admin sessions', not of 'admin fleet'"],
      [['fleet', '--admin-url', 'not a url'], '--admin-url ("not a url") must be a URL such as http://127.0.0.1:9090'],
    ] as const) {
      const result = await admin([...args]);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr.split('\n').length, result.stderr).toBe(2);
      expect(result.stderr).toContain(message);
    }
  });

  // Last: it leaves b draining.
  it('drain: an instance drained through another agent takes no new session, keeps its own; an unknown one is exit 1', async () => {
    const drained = await admin(['drain', 'b', ...via('a')]);
    expect(drained.stderr).toBe('');
    expect(drained.code).toBe(0);
    expect(drained.stdout).toBe(
      'draining b: it takes no new sessions; its sessions go on until it stops (confirmed by the instance)\n',
    );

    const fleet = await admin(['fleet', '--json', ...via('a')]);
    const body = JSON.parse(fleet.stdout) as { instances: Array<{ id: string; draining: boolean }> };
    expect(body.instances.find((i) => i.id === 'b')?.draining).toBe(true);
    expect(body.instances.find((i) => i.id === 'a')?.draining).toBe(false);
    const ready = await fetch(`${agents.b.adminUrl}/readyz`);
    expect(ready.status).toBe(503);

    // bob's session on b goes on; a new one is refused there (the balancer, told by /readyz, sends
    // it elsewhere) and placed on a.
    const post = (agent: Id, session: string, user: string) =>
      fetch(`${agents[agent].url}/echo`, {
        method: 'POST',
        headers: { 'x-session': session, 'x-user': user, 'content-type': 'application/json' },
        body: '{}',
      });
    expect((await post('b', 'cli-session-bob', 'bob')).status).toBe(200);
    const refused = await post('b', 'cli-session-carol', 'carol');
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('DRAINING');
    expect((await post('a', 'cli-session-carol', 'carol')).status).toBe(200);
    const carol = await admin(['session', 'cli-session-carol', '--json', ...via('b')]);
    expect(JSON.parse(carol.stdout)).toMatchObject({ owner: 'a' });

    const unknown = await admin(['drain', 'nope', ...via('a')]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(
      'sessionfleet-agent admin: the agent refused: NOT_FOUND: no live instance "nope" in the fleet: check the path\n',
    );
  });
});
