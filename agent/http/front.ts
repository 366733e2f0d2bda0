import type { AgentContext, Front } from '../core/context.js';

// Placeholder until the HTTP front lands (issue 2).
export async function createHttpFront(_context: AgentContext): Promise<Front> {
  throw new Error('the HTTP front is not built yet');
}
