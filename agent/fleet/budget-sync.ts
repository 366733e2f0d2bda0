/**
 * The fleet side of `policy.limits` (ADR 0015): one atomic script writes this agent's counts of
 * requests, streams and tasks per principal and tenant, drops those of agents whose lease ran
 * out, and returns the rest of the fleet's, summed (`lua/budgets.ts`).
 */
import type { Redis } from 'ioredis';
import type { FleetKeys } from './keys.js';
import type { BudgetShare } from './types.js';

export class BudgetSync implements BudgetShare {
  constructor(
    private readonly redis: Redis,
    private readonly keys: FleetKeys,
    private readonly instanceId: string,
  ) {}

  async share(local: ReadonlyMap<string, number>): Promise<Map<string, number>> {
    const args: Array<string | number> = [this.keys.budgets, this.keys.leases, this.instanceId];
    for (const [field, count] of local) args.push(field, count);
    const reply = await this.redis.sfBudgetSync(...args);
    const remote = new Map<string, number>();
    for (let i = 0; i + 1 < reply.length; i += 2) remote.set(String(reply[i]), Number(reply[i + 1]));
    return remote;
  }
}
