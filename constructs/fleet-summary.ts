/**
 * What a stack's fleets created, for a consumer's own synth (`printFleetSummary(app)`), and the
 * per-type counting that the repository's `npm run synth` summary (stacks/summary.ts) prints too.
 * Platform modules register how to recognize and describe their fleets, so this module loads no
 * provider: `sessionfleet/azure` works without @cdktf/provider-kubernetes.
 */
import { TerraformResource } from 'cdktf';
import type { IConstruct } from 'constructs';

/** One fleet: where it is, the Terraform resources under it by type, and what it needs from you. */
export interface FleetSummary {
  /** The fleet construct's path, e.g. `my-stack/mcp`. */
  readonly path: string;
  /** The construct class, e.g. `KubernetesSessionFleet`. */
  readonly kind: string;
  /** The fleet's resource name. */
  readonly name: string;
  /** Terraform resource type → how many of it, sorted by type. */
  readonly resources: ReadonlyArray<readonly [type: string, count: number]>;
  /** Defaults that need something else in place (an adapter, a storage class, an image). */
  readonly warnings: readonly string[];
}

/** How a platform module recognizes its fleets and says what they need. */
export interface FleetDescriber {
  /** The fleet's class name and resource name, or undefined when `node` is not this platform's fleet. */
  identify(node: IConstruct): { kind: string; name: string } | undefined;
  /** Warnings for defaults that need something else; `types` are the fleet's resources by type. */
  warnings(node: IConstruct, types: ReadonlyMap<string, number>): string[];
}

const describers: FleetDescriber[] = [];

/** Called once by each platform module when it loads. */
export function registerFleetDescriber(describer: FleetDescriber): void {
  describers.push(describer);
}

/** Counts of each item, sorted by item: the per-type table of both summaries. */
export function countByType(types: Iterable<string>): Array<[type: string, count: number]> {
  const counts = new Map<string, number>();
  for (const type of types) counts.set(type, (counts.get(type) ?? 0) + 1);
  return [...counts].sort(([a], [b]) => a.localeCompare(b));
}

/** One line per type, count first, as `npm run synth` prints them. */
export function formatTypeCounts(counts: ReadonlyArray<readonly [string, number]>): string[] {
  return counts.map(([type, n]) => `  ${String(n).padStart(3)} ${type}`);
}

/** Every fleet under `scope` (an App, a stack or a fleet), in construct-tree order. */
export function summarizeFleets(scope: IConstruct): FleetSummary[] {
  const summaries: FleetSummary[] = [];
  for (const node of scope.node.findAll()) {
    for (const describer of describers) {
      const identity = describer.identify(node);
      if (identity === undefined) continue;
      const resources = countByType(
        node.node
          .findAll()
          .filter((child): child is TerraformResource => TerraformResource.isTerraformResource(child))
          .map((resource) => resource.terraformResourceType),
      );
      summaries.push({
        path: node.node.path,
        ...identity,
        resources,
        warnings: describer.warnings(node, new Map(resources)),
      });
    }
  }
  return summaries;
}

/**
 * Prints what each fleet under `scope` creates and the warnings about its defaults; call it in
 * your cdktf program after building the stacks (before or after `app.synth()`).
 * @returns the summaries it printed
 */
export function printFleetSummary(
  scope: IConstruct,
  write: (line: string) => void = (line) => console.log(line),
): FleetSummary[] {
  const summaries = summarizeFleets(scope);
  write(`sessionfleet: ${summaries.length} fleet${summaries.length === 1 ? '' : 's'}`);
  for (const fleet of summaries) {
    const total = fleet.resources.reduce((sum, [, n]) => sum + n, 0);
    write(`${fleet.path} (${fleet.kind} "${fleet.name}"): ${total} resources`);
    for (const line of formatTypeCounts(fleet.resources)) write(line);
    for (const warning of fleet.warnings) write(`  warning: ${warning}`);
  }
  return summaries;
}
