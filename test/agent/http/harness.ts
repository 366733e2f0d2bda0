/**
 * An agent started in the test process (`startAgent`, the same code the CLI runs) on loopback
 * sockets, for tests that look at its insides: the session table, the front's counters, log
 * lines. End-to-end tests that need a separate process use `test/helpers/http-agent-process.ts`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAgentConfig } from '../../../agent/config.js';
import type { AgentContext } from '../../../agent/core/context.js';
import type { JwtTunables } from '../../../agent/core/jwt.js';
import { InstanceLoad } from '../../../agent/core/load.js';
import { createLogger } from '../../../agent/core/logger.js';
import { createMetrics } from '../../../agent/core/metrics.js';
import { type EndReason, type Session, SessionTable } from '../../../agent/core/sessions.js';
import { LocalCoordinator } from '../../../agent/fleet/local-coordinator.js';
import type { HttpFront } from '../../../agent/http/front.js';
import { type RunningAgent, startAgent } from '../../../agent/server.js';
import { validatePolicy } from '../../../policy/index.js';

export interface TestAgent {
  readonly agent: RunningAgent;
  readonly front: HttpFront;
  readonly url: string;
  readonly adminUrl: string;
  /** Parsed log lines so far. */
  readonly logs: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

export async function startTestAgent(
  policy: Record<string, unknown>,
  upstream: string,
  args: readonly string[] = [],
  options: { logLevel?: string; jwt?: JwtTunables } = {},
): Promise<TestAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'sessionfleet-http-'));
  const file = join(dir, 'policy.json');
  writeFileSync(file, JSON.stringify(policy));
  const config = parseAgentConfig([
    '--policy',
    file,
    '--upstream',
    upstream,
    '--listen',
    '127.0.0.1:0',
    '--admin-listen',
    '127.0.0.1:0',
    '--instance-id',
    'test',
    '--probe-interval-ms',
    '200',
    ...args,
  ]);
  const logs: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    level: options.logLevel ?? 'debug',
    instanceId: 'test',
    destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
  });
  const agent = await startAgent(config, { logger, ...(options.jwt ? { jwt: options.jwt } : {}) });
  return {
    agent,
    front: agent.front as HttpFront,
    url: `http://127.0.0.1:${agent.client.port}`,
    adminUrl: `http://127.0.0.1:${agent.admin.port}`,
    logs,
    async stop() {
      await agent.shutdown('test over');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `condition` every 20 ms until it holds or `timeoutMs` passes. */
export async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * The context `startAgent` builds, for tests that construct a front themselves (to pass it
 * options the command line does not have). Close `sessions` when done.
 */
export function buildTestContext(policy: Record<string, unknown>, upstream: string): AgentContext {
  const validated = validatePolicy(policy);
  if (!validated.ok) throw new Error(validated.errors.map((e) => e.message).join('; '));
  const config = parseAgentConfig([
    '--policy',
    'unused.json',
    '--upstream',
    upstream,
    '--listen',
    '127.0.0.1:0',
    '--admin-listen',
    '127.0.0.1:0',
  ]);
  const listeners: Array<(session: Session, reason: EndReason) => void> = [];
  const sessions = new SessionTable({
    policy: validated.policy,
    onEnd: (session, reason) => {
      for (const listener of listeners) listener(session, reason);
    },
  });
  const context: AgentContext = {
    config,
    policy: validated.policy,
    logger: createLogger({ level: 'silent', instanceId: 'test' }),
    metrics: createMetrics({ instanceId: 'test', defaultMetrics: false }),
    sessions,
    load: new InstanceLoad(validated.policy.concurrencyPerInstance),
    principals: undefined,
    onSessionEnd: (listener) => {
      listeners.push(listener);
    },
    draining: false,
  };
  // What the composition root gives a front without --redis.
  return { ...context, coordinator: new LocalCoordinator(context) };
}
