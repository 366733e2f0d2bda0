import type { AgentContext, Front } from '../core/context.js';

// Placeholder until the Copilot front lands (issue 3).
export async function createCopilotFront(_context: AgentContext): Promise<Front> {
  throw new Error('the Copilot front is not built yet');
}
