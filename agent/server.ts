import type { AgentConfig } from './config.js';

/** Runs the agent until it is told to stop; resolves with the process exit code. */
export async function runAgent(_config: AgentConfig): Promise<number> {
  throw new Error('the agent server is not part of this build yet');
}
