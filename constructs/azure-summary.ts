// How `printFleetSummary` describes the Azure fleets: what each creates that costs or could be shared.
import type { IConstruct } from 'constructs';
import { agentImageWarning } from './agent-image.js';
import { AzureSessionFleetBase } from './azure-fleet-base.js';
import { registerFleetDescriber } from './fleet-summary.js';

function azureFleetWarnings(fleet: AzureSessionFleetBase, types: ReadonlyMap<string, number>): string[] {
  const warnings: string[] = [];
  if ((types.get('azurerm_managed_redis') ?? 0) > 0) {
    warnings.push(`an Azure Managed Redis of its own (${fleet.redisSkuName}); fleets can share one through redisUrl`);
  }
  if ((types.get('azurerm_redis_cache') ?? 0) > 0) {
    warnings.push(
      `an Azure Cache for Redis of its own (${fleet.redisSkuName} C${fleet.redisCapacity}); fleets can share one ` +
        'through redisUrl',
    );
  }
  const image = agentImageWarning(fleet.agent.image);
  if (image !== undefined) warnings.push(image);
  return warnings;
}

registerFleetDescriber({
  identify: (node: IConstruct) =>
    node instanceof AzureSessionFleetBase ? { kind: node.constructor.name, name: node.name } : undefined,
  warnings: (node, types) => azureFleetWarnings(node as AzureSessionFleetBase, types),
});
