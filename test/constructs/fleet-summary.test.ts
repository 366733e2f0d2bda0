/**
 * printFleetSummary: what each fleet created, by type, and the defaults that need something else
 * in the cluster; the default-image warning that `cdktf synth` prints.
 */
import { App, TerraformStack, Testing } from 'cdktf';
import { describe, expect, it } from 'vitest';
import {
  AzureContainerInstancesSessionFleet,
  DEFAULT_AGENT_IMAGE,
  KubernetesFleetRedis,
  KubernetesSessionFleet,
  KubernetesSessionStorage,
  printFleetSummary,
  summarizeFleets,
} from '../../constructs/index.js';

function twoFleets(agentImage?: string) {
  const app = Testing.app();
  const stack = new TerraformStack(app, 'user');
  new KubernetesSessionFleet(stack, 'Copilot', {
    policy: { affinity: { type: 'copilot-jsonrpc' }, maxInstances: 4 },
    app: { image: 'example/copilot:1', port: 4321 },
    ...(agentImage !== undefined ? { agent: { image: agentImage } } : {}),
  });
  new KubernetesSessionFleet(stack, 'Mcp', {
    policy: { affinity: { type: 'mcp-streamable-http' }, maxInstances: 3 },
    app: { image: 'example/mcp:1', port: 3000 },
    storage: KubernetesSessionStorage.ephemeral(),
    redis: KubernetesFleetRedis.external({ secretName: 'redis', key: 'url' }),
    scaleOn: 'cpu',
    ...(agentImage !== undefined ? { agent: { image: agentImage } } : {}),
  });
  new AzureContainerInstancesSessionFleet(stack, 'Aci', {
    location: 'westeurope',
    app: { image: 'example/app:1', port: 3000 },
    policy: { affinity: { type: 'cookie' } },
    ...(agentImage !== undefined ? { agent: { image: agentImage } } : {}),
  });
  return { app, stack };
}

describe('printFleetSummary', () => {
  it('lists every fleet with its resources by type, matching what synth writes', () => {
    const { app, stack } = twoFleets('registry.example/sessionfleet-agent:1');
    const lines: string[] = [];
    const summaries = printFleetSummary(app, (line) => lines.push(line));
    expect(summaries.map((s) => [s.path, s.kind, s.name])).toEqual([
      ['user/Copilot', 'KubernetesSessionFleet', 'copilot'],
      ['user/Mcp', 'KubernetesSessionFleet', 'mcp'],
      ['user/Aci', 'AzureContainerInstancesSessionFleet', expect.any(String)],
    ]);
    expect(lines[0]).toBe('sessionfleet: 3 fleets');
    expect(lines).toContain('user/Mcp (KubernetesSessionFleet "mcp"): ' + `${total(summaries[1]!)} resources`);

    // The counts are those of the synthesized JSON: every resource of the stack belongs to a fleet.
    const json = JSON.parse(Testing.synth(stack)) as { resource: Record<string, Record<string, unknown>> };
    const synthesized = new Map<string, number>();
    for (const [type, items] of Object.entries(json.resource)) synthesized.set(type, Object.keys(items).length);
    const summed = new Map<string, number>();
    for (const s of summaries) for (const [type, n] of s.resources) summed.set(type, (summed.get(type) ?? 0) + n);
    expect(Object.fromEntries(summed)).toEqual(Object.fromEntries(synthesized));
  });

  it('warns about the defaults that need something else in the cluster, and only those', () => {
    const { app } = twoFleets('registry.example/sessionfleet-agent:1');
    const [copilot, mcp, aci] = summarizeFleets(app);
    expect(copilot!.warnings).toEqual([
      expect.stringMatching(
        /custom-metrics adapter.*sessionfleet_session_utilization|sessionfleet_session_utilization.*custom-metrics adapter/,
      ),
      expect.stringMatching(/10 GiB ReadWriteMany claim: the cluster's default StorageClass must offer ReadWriteMany/),
      expect.stringMatching(/in-cluster Redis of its own/),
    ]);
    expect(mcp!.warnings).toEqual([]);
    expect(aci!.warnings).toEqual([expect.stringMatching(/Azure Managed Redis of its own \(Balanced_B1\)/)]);
  });

  it('warns at synth, on the stack, when a fleet runs the unpublished default agent image', () => {
    const { app, stack } = twoFleets();
    const warnings = stack.node.metadata.filter((m) => m.type === '@cdktf/warn').map((m) => String(m.data));
    expect(warnings).toEqual([
      expect.stringMatching(/^user\/Copilot: the agent image .* is not published yet.*docs\/image\.md/),
      expect.stringMatching(/^user\/Mcp: /),
      expect.stringMatching(/^user\/Aci: /),
    ]);
    expect(warnings[0]).toContain(DEFAULT_AGENT_IMAGE);
    expect(summarizeFleets(app).every((s) => s.warnings.some((w) => w.includes(DEFAULT_AGENT_IMAGE)))).toBe(true);
    const mine = twoFleets('registry.example/sessionfleet-agent:1');
    expect(mine.stack.node.metadata.filter((m) => m.type === '@cdktf/warn')).toEqual([]);
  });

  it('says so when there is no fleet', () => {
    const lines: string[] = [];
    expect(printFleetSummary(new App({ outdir: Testing.app().outdir }), (line) => lines.push(line))).toEqual([]);
    expect(lines).toEqual(['sessionfleet: 0 fleets']);
  });
});

function total(summary: { resources: ReadonlyArray<readonly [string, number]> }): number {
  return summary.resources.reduce((sum, [, n]) => sum + n, 0);
}
