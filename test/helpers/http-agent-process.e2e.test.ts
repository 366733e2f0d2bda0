/**
 * `spawnAgent` at any log level: the "agent listening" line it reads the ports from is info-level,
 * so with a quieter `--log-level` (flag, `--flag=value` or the environment) it names the ports
 * itself and waits for the admin port to answer instead of hanging.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type AgentProcess, spawnAgent, stopAll } from './http-agent-process.js';

const POLICY = { affinity: { type: 'cookie' } };
// Nothing listens there: the agent starts anyway and answers that the upstream is down.
const UPSTREAM = 'http://127.0.0.1:9';

afterAll(() => stopAll());

async function answers(agent: AgentProcess): Promise<void> {
  expect((await fetch(`${agent.adminUrl}/livez`)).status).toBe(200);
  // The client port answers too (whatever the dead upstream makes it say).
  expect((await fetch(agent.url)).status).toBeGreaterThanOrEqual(200);
}

describe('spawnAgent', () => {
  it.each([
    ['--log-level warn', { args: ['--log-level', 'warn'] }],
    ['--log-level=silent', { args: ['--log-level=silent'] }],
    ['SESSIONFLEET_LOG_LEVEL=error', { env: { SESSIONFLEET_LOG_LEVEL: 'error' } }],
  ])(
    'starts an agent run with %s, which never prints "agent listening"',
    async (_name, extra) => {
      const agent = await spawnAgent({ policy: POLICY, upstream: UPSTREAM, ...extra });
      await answers(agent);
      expect(agent.lines.some((l) => l.includes('agent listening'))).toBe(false);
      await agent.stop();
    },
    60_000,
  );

  it('still reads the ports from the "agent listening" line at info', async () => {
    const agent = await spawnAgent({ policy: POLICY, upstream: UPSTREAM });
    await answers(agent);
    expect(agent.lines.some((l) => l.includes('agent listening'))).toBe(true);
    await agent.stop();
  }, 60_000);
});
