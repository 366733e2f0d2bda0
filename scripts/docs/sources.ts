/**
 * Where the reference pages read from: the one place to change when a name or a file moves (the
 * agent's flag names are moving to `policy/agent-interface.ts`). Everything is read from the code
 * as it runs, except construct props and error meanings, whose prose is TSDoc read with the
 * TypeScript compiler.
 */
import type { Registry } from 'prom-client';

export { CLI_COMMANDS, EXIT_CODES } from '../../agent/cli-usage.js';
export { ERRORS } from '../../agent/core/errors.js';
export { AGENT_FLAGS, envName } from '../../policy/agent-interface.js';
export { CROSS_FIELD_RULES, UNSET_MEANS } from '../../policy/rule-catalogue.js';
export { policyInputSchema } from '../../policy/schema.js';

/** The file whose `ERRORS` entries carry the meaning of each code as TSDoc. */
export const ERRORS_FILE = 'agent/core/errors.ts';

/** The entry point whose exported interfaces are the construct library's props. */
export const CONSTRUCTS_ENTRY = 'constructs/index.ts';

/** The generated, TSDoc'd `PolicyInput` type. */
export const POLICY_INPUT_FILE = 'policy/policy-input.ts';

/** Every metric the agent can expose, registered on one registry (no default process metrics). */
export async function agentMetricsRegistry(): Promise<Registry> {
  const { createMetrics } = await import('../../agent/core/metrics.js');
  const { createFleetMetrics } = await import('../../agent/fleet/metrics.js');
  const metrics = createMetrics({ instanceId: 'docs', defaultMetrics: false });
  createFleetMetrics(metrics.registry);
  return metrics.registry;
}

/** The prefix of the Node.js process metrics prom-client adds (`collectDefaultMetrics`). */
export const DEFAULT_METRICS_PREFIX = 'sessionfleet_agent_';
