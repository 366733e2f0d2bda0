/**
 * Synthesis time of a tenant-isolated Kubernetes fleet as tenants are added: 1, 10 and 100
 * tenants, each with its own Deployment, Service, claim, autoscaler, disruption budget,
 * NetworkPolicy and Redis, synthesized to Terraform JSON in a temporary folder by a fresh cdktf
 * App, in this one process. Prints each size's time, the time per tenant, and the ratio to the
 * one-tenant stack measured in the same run.
 *
 *   npx tsx bench/synth-tenants.ts [--runs 3]
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { KubernetesProvider } from '@cdktf/provider-kubernetes/lib/provider/index.js';
import { App, TerraformStack } from 'cdktf';
import { KubernetesSessionFleet, KubernetesTrustedProxies } from '../constructs/index.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });
const runs = Number(values.runs);

function synthTenants(count: number): { ms: number; bytes: number; resources: number } {
  const outdir = mkdtempSync(join(tmpdir(), 'sessionfleet-synth-'));
  try {
    const started = performance.now();
    const app = new App({ outdir });
    const stack = new TerraformStack(app, 'tenants');
    new KubernetesProvider(stack, 'Kubernetes', { configPath: '~/.kube/config' });
    new KubernetesSessionFleet(stack, 'PerUser', {
      namespace: 'sessionfleet',
      policy: { isolation: 'tenant', affinity: { type: 'copilot-jsonrpc' }, maxInstances: 2 },
      app: { image: 'your-registry/copilot-cli:1.0.102', args: ['--headless', '--port', '4321'], port: 4321 },
      upstreamToken: { secretName: 'copilot-connection', key: 'token' },
      trustedProxies: KubernetesTrustedProxies.anySource(),
      tenants: Array.from({ length: count }, (_, i) => ({
        tenantId: `tenant-${String(i).padStart(3, '0')}`,
        principals: { secretName: `tenant-${i}-principals`, key: 'principals.json' },
      })),
    });
    app.synth();
    const ms = performance.now() - started;
    const file = join(outdir, 'stacks', 'tenants', 'cdk.tf.json');
    const json = JSON.parse(readFileSync(file, 'utf8')) as { resource: Record<string, object> };
    const resources = Object.values(json.resource).reduce((n, r) => n + Object.keys(r).length, 0);
    return { ms, bytes: statSync(file).size, resources };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
// Warm the module cache and the JIT so the first size does not pay for loading.
synthTenants(1);
const sizes = [1, 10, 100];
const results = new Map<number, { ms: number[]; bytes: number; resources: number }>();
for (let run = 0; run < runs; run++)
  for (const size of sizes) {
    const r = synthTenants(size);
    const entry = results.get(size) ?? { ms: [], bytes: r.bytes, resources: r.resources };
    entry.ms.push(r.ms);
    results.set(size, entry);
  }
console.log(
  `node ${process.version}; ${runs} runs per size, medians (a fresh App each, synthesized to a temporary folder)`,
);
console.log('tenants  resources  JSON KiB  synth ms  ms/tenant  vs 1 tenant');
const one = median(results.get(1)!.ms);
for (const size of sizes) {
  const r = results.get(size)!;
  const ms = median(r.ms);
  console.log(
    `${String(size).padStart(7)}  ${String(r.resources).padStart(9)}  ${(r.bytes / 1024).toFixed(0).padStart(8)}  ${ms.toFixed(0).padStart(8)}  ${(ms / size).toFixed(1).padStart(9)}  ${(ms / one).toFixed(1).padStart(10)}x`,
  );
}
console.log(
  `synth-tenants: 100 tenants take ${(median(results.get(100)!.ms) / 1000).toFixed(1)} s, ${(median(results.get(100)!.ms) / one).toFixed(1)}x one tenant`,
);
