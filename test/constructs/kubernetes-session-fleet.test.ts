import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { ConfigMapV1 } from '@cdktf/provider-kubernetes/lib/config-map-v1/index.js';
import { HorizontalPodAutoscalerV2 } from '@cdktf/provider-kubernetes/lib/horizontal-pod-autoscaler-v2/index.js';
import { PersistentVolumeClaimV1 } from '@cdktf/provider-kubernetes/lib/persistent-volume-claim-v1/index.js';
import { PodDisruptionBudgetV1 } from '@cdktf/provider-kubernetes/lib/pod-disruption-budget-v1/index.js';
import { TerraformVariable, Token } from 'cdktf';
import type { Construct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { agentArgs } from '../../constructs/agent-container.js';
import {
  DEFAULT_AGENT_IMAGE,
  KubernetesFleetRedis,
  KubernetesSessionFleet,
  type KubernetesSessionFleetProps,
  KubernetesSessionStorage,
  KubernetesTrustedProxies,
  parsePolicy,
  SESSION_UTILIZATION_METRIC,
} from '../../constructs/index.js';
import { AGENT_ENV, POLICY_MOUNT_PATH, PRINCIPALS_MOUNT_PATH } from '../../policy/agent-interface.js';
import { REPO_ROOT } from '../helpers/run.js';
import {
  container,
  envOf,
  type Json,
  named,
  nameRef,
  podSpec,
  resourceCounts,
  resourcesOf,
  type Synthesized,
  synth,
  tf,
} from './kubernetes-test-helpers.js';

const COPILOT: KubernetesSessionFleetProps = {
  namespace: 'agents',
  policy: { affinity: { type: 'copilot-jsonrpc' }, minInstances: 3, maxInstances: 10 },
  app: {
    image: 'your-registry/copilot-cli:1.0.102',
    args: ['--headless', '--port', '4321'],
    port: 4321,
    secretEnv: { COPILOT_GITHUB_TOKEN: { secretName: 'copilot-secrets', key: 'github-token' } },
  },
  upstreamToken: { secretName: 'copilot-secrets', key: 'connection-token' },
  principals: { secretName: 'copilot-principals', key: 'principals.json' },
  metricsScrapeNamespaces: ['monitoring'],
};

const MCP: KubernetesSessionFleetProps = {
  policy: { affinity: { type: 'mcp-streamable-http' }, sessionsPerInstance: 50, maxInstances: 20 },
  app: { image: 'your-registry/mcp-server:1.0.0', port: 3000, env: { PORT: '3000' }, healthPath: '/health' },
  storage: KubernetesSessionStorage.ephemeral(),
  redis: KubernetesFleetRedis.external({ secretName: 'mcp-redis', key: 'url' }),
  principalHeader: 'x-authenticated-user',
  trustedProxies: KubernetesTrustedProxies.from({ namespaces: ['ingress-nginx'] }),
};

const SELECTOR = (fleet: string, component = 'instance') => ({
  'app.kubernetes.io/component': component,
  'app.kubernetes.io/instance': fleet,
  'app.kubernetes.io/name': 'sessionfleet',
});

function fleetOf(props: KubernetesSessionFleetProps, id = 'CopilotCli') {
  let fleet: KubernetesSessionFleet | undefined;
  const s = synth((scope: Construct) => {
    fleet = new KubernetesSessionFleet(scope, id, props);
  });
  return { s, fleet: fleet! };
}

describe('KubernetesSessionFleet: the Copilot CLI fleet of the seed', () => {
  const { s, fleet } = fleetOf(COPILOT);
  const deployment = named(s, 'kubernetes_deployment_v1', 'copilot-cli');
  const app = container(deployment, 'app');
  const agent = container(deployment, 'agent');

  it('synthesizes the pattern: workload, Service, ConfigMap, PVC, HPA, PDB, NetworkPolicies and a Redis', () => {
    expect(resourceCounts(s)).toEqual({
      kubernetes_config_map_v1: 1,
      kubernetes_deployment_v1: 2,
      kubernetes_horizontal_pod_autoscaler_v2: 1,
      kubernetes_network_policy_v1: 2,
      kubernetes_persistent_volume_claim_v1: 1,
      kubernetes_pod_disruption_budget_v1: 1,
      kubernetes_secret_v1: 1,
      kubernetes_service_v1: 2,
    });
    for (const items of Object.values(s.json.resource) as Json[]) {
      for (const resource of Object.values(items) as Json[]) expect(resource.metadata.namespace).toBe('agents');
    }
  });

  it('runs the app and the agent side by side; the app has no port of its own', () => {
    expect(podSpec(deployment).container.map((c: Json) => c.name)).toEqual(['app', 'agent']);
    expect(app.image).toBe('your-registry/copilot-cli:1.0.102');
    expect(app.args).toEqual(['--headless', '--port', '4321']);
    expect(app.port).toBeUndefined();
    expect(agent.image).toBe(DEFAULT_AGENT_IMAGE);
    expect(agent.port).toEqual([
      { container_port: 8080, name: 'agent', protocol: 'TCP' },
      { container_port: 9090, name: 'admin', protocol: 'TCP' },
    ]);
  });

  it("gives the agent the flags of SPEC.md §8, fronting the app on the pod's loopback", () => {
    expect(agent.args).toEqual(
      agentArgs({
        policy: fleet.policy,
        appPort: 4321,
        principals: true,
        fleetName: fleet.fleetName,
        sessionStateDir: '/var/lib/sessionfleet/shared-state',
        appStateDir: '/var/lib/sessionfleet/app-state',
      }),
    );
    expect(agent.args).toEqual([
      '--policy',
      '/etc/sessionfleet/policy.json',
      '--upstream',
      'tcp://127.0.0.1:4321',
      '--listen',
      '0.0.0.0:8080',
      '--admin-listen',
      '0.0.0.0:9090',
      '--fleet',
      fleet.fleetName,
      '--principals',
      '/etc/sessionfleet-principals/principals.json',
      '--session-state-dir',
      '/var/lib/sessionfleet/shared-state',
      '--app-state-dir',
      '/var/lib/sessionfleet/app-state',
    ]);
    expect(fleet.fleetName).toMatch(/^copilot-cli-[0-9a-f]{8}$/);
  });

  it("puts a Service in front of the agents' client port only", () => {
    const service = named(s, 'kubernetes_service_v1', 'copilot-cli');
    expect(service.spec).toEqual({
      port: [{ name: 'agent', port: 8080, protocol: 'TCP', target_port: 'agent' }],
      selector: SELECTOR('copilot-cli'),
      type: 'ClusterIP',
    });
    expect(deployment.spec.selector.match_labels).toEqual(SELECTOR('copilot-cli'));
  });

  it('writes the policy, validated by the shared model, into a ConfigMap the agent mounts', () => {
    const configMap = named(s, 'kubernetes_config_map_v1', 'copilot-cli-policy');
    const content: string = configMap.data['policy.json'];
    expect(JSON.parse(content)).toEqual(
      parsePolicy({
        affinity: { type: 'copilot-jsonrpc' },
        minInstances: 3,
        maxInstances: 10,
        instanceVcpu: 1,
        sharedSessionState: true,
      }),
    );
    expect(fleet.policy.sharedSessionState).toBe(true);
    expect(podSpec(deployment).volume[0]).toEqual({
      config_map: {
        items: [{ key: 'policy.json', path: 'policy.json' }],
        name: tf('kubernetes_config_map_v1.CopilotCli_PolicyConfigMap_A0C189E0.metadata[0].name'),
      },
      name: 'policy',
    });
    expect(agent.volume_mount).toContainEqual({ mount_path: POLICY_MOUNT_PATH, name: 'policy', read_only: true });
    // A policy change changes the pod template, so the pods roll.
    expect(deployment.spec.template.metadata.annotations['sessionfleet/policy-sha256']).toBe(
      createHash('sha256').update(content).digest('hex'),
    );
  });

  it('passes every secret by reference: Secret keys, never values', () => {
    expect(envOf(app)).toEqual({
      COPILOT_GITHUB_TOKEN: { secret_key_ref: { key: 'github-token', name: 'copilot-secrets' } },
      COPILOT_CONNECTION_TOKEN: { secret_key_ref: { key: 'connection-token', name: 'copilot-secrets' } },
    });
    const agentEnv = envOf(agent);
    expect(agentEnv[AGENT_ENV.upstreamToken]).toEqual({
      secret_key_ref: { key: 'connection-token', name: 'copilot-secrets' },
    });
    expect(agentEnv.REDIS_PASSWORD).toEqual({
      secret_key_ref: { key: 'password', name: nameRef(s, 'kubernetes_secret_v1', 'copilot-cli-redis-auth') },
    });
    expect(podSpec(deployment).volume).toContainEqual({
      name: 'principals',
      secret: { items: [{ key: 'principals.json', path: 'principals.json' }], secret_name: 'copilot-principals' },
    });
    expect(agent.volume_mount).toContainEqual({
      mount_path: PRINCIPALS_MOUNT_PATH,
      name: 'principals',
      read_only: true,
    });
    // Nothing in any ConfigMap or container looks like a credential value.
    for (const c of podSpec(deployment).container) {
      for (const e of c.env) {
        if (/TOKEN|PASSWORD/.test(e.name)) expect(e.value, e.name).toBeUndefined();
      }
    }
  });

  it('names each agent after its pod and advertises the pod IP to its peers', () => {
    const env = envOf(agent);
    expect(env.POD_IP).toEqual({ field_ref: { api_version: 'v1', field_path: 'status.podIP' } });
    expect(env[AGENT_ENV.instanceId]).toEqual({ field_ref: { api_version: 'v1', field_path: 'metadata.name' } });
    expect(env[AGENT_ENV.advertise]).toBe('http://$(POD_IP):8080');
    // A shared fleet serves no one tenant (tenant isolation's instances get SESSIONFLEET_TENANT).
    expect(env[AGENT_ENV.tenant]).toBeUndefined();
    const names = agent.env.map((e: Json) => e.name);
    // $(VAR) is expanded only from variables defined earlier.
    expect(names.indexOf('POD_IP')).toBeLessThan(names.indexOf(AGENT_ENV.advertise));
    expect(names.indexOf('REDIS_PASSWORD')).toBeLessThan(names.indexOf(AGENT_ENV.redis));
  });

  it('keeps session state on a ReadWriteMany claim mounted at ~/.copilot/session-state', () => {
    expect(s.text).toHaveResourceWithProperties(PersistentVolumeClaimV1, {
      metadata: { name: 'copilot-cli-session-state', namespace: 'agents' },
      spec: { accessModes: ['ReadWriteMany'], resources: { requests: { storage: '10Gi' } } },
      waitUntilBound: false,
    });
    expect(podSpec(deployment).volume).toContainEqual({
      name: 'session-state',
      persistent_volume_claim: {
        claim_name: nameRef(s, 'kubernetes_persistent_volume_claim_v1', 'copilot-cli-session-state'),
      },
    });
    // Issue 14 §1 (ADR 0019): the shared volume is the agent's alone — it stages each session the
    // instance serves into the app's private volume, and cleans up sessions past their TTL.
    expect(podSpec(deployment).volume).toContainEqual({ name: 'app-session-state', empty_dir: {} });
    expect(app.volume_mount).toEqual([{ mount_path: '/root/.copilot/session-state', name: 'app-session-state' }]);
    expect(agent.volume_mount).toContainEqual({
      mount_path: '/var/lib/sessionfleet/shared-state',
      name: 'session-state',
    });
    expect(agent.volume_mount).toContainEqual({
      mount_path: '/var/lib/sessionfleet/app-state',
      name: 'app-session-state',
    });
    expect(podSpec(deployment).security_context).toMatchObject({
      fs_group: '1000',
      fs_group_change_policy: 'OnRootMismatch',
    });
    expect(deployment.spec.strategy).toEqual({
      rolling_update: { max_surge: '1', max_unavailable: '0' },
      type: 'RollingUpdate',
    });
  });

  it("probes the agent's /livez (its own liveness) and /readyz; the app through /startupz and /healthz", () => {
    const probe = (path: string, period: number, failures: number) => ({
      failure_threshold: failures,
      http_get: { path, port: '9090' },
      period_seconds: period,
      timeout_seconds: 2,
    });
    // A hung app fails /healthz and restarts the app container, never the agent and its connections.
    expect(agent.liveness_probe).toEqual(probe('/livez', 10, 3));
    // The Service's readiness, which stays up while the agent serves what it holds (ADR 0018);
    // never the new-session signal, which would take held sessions out of the Service.
    expect(agent.readiness_probe).toEqual(probe('/readyz/serving', 5, 2));
    expect(JSON.stringify(agent)).not.toContain('"/readyz"');
    expect(agent.startup_probe).toEqual(probe('/livez', 2, 15));
    expect(app.liveness_probe).toEqual(probe('/healthz', 10, 3));
    // /startupz has no grace period: 60 failures × 2 s is the whole startupTimeoutSeconds (120).
    expect(app.startup_probe).toEqual(probe('/startupz', 2, 60));
  });

  it('drains before it stops: preStop hooks and a grace period longer than the drain timeout', () => {
    const drain = fleet.policy.drainTimeoutSeconds;
    expect(drain).toBe(30);
    expect(agent.lifecycle.pre_stop).toEqual([{ exec: { command: ['sleep', '5'] } }]);
    // The app keeps serving until the agent's preStop delay and drain are over.
    expect(app.lifecycle.pre_stop).toEqual([{ exec: { command: ['sleep', '35'] } }]);
    expect(podSpec(deployment).termination_grace_period_seconds).toBe(50);
    expect(podSpec(deployment).termination_grace_period_seconds).toBeGreaterThan(5 + drain);
  });

  it('limits voluntary disruptions to one pod at a time', () => {
    expect(s.text).toHaveResourceWithProperties(PodDisruptionBudgetV1, {
      metadata: { name: 'copilot-cli' },
      spec: { maxUnavailable: '1', selector: { matchLabels: SELECTOR('copilot-cli') } },
    });
  });

  it("scales between the policy's min and max instances on the agents' session utilization", () => {
    const hpa = named(s, 'kubernetes_horizontal_pod_autoscaler_v2', 'copilot-cli');
    expect(hpa.spec).toEqual({
      behavior: {
        scale_down: [{ policy: [{ period_seconds: 60, type: 'Pods', value: 1 }], stabilization_window_seconds: 300 }],
      },
      max_replicas: 10,
      metric: [
        {
          pods: {
            metric: { name: 'sessionfleet_session_utilization' },
            target: { average_value: '800m', type: 'AverageValue' },
          },
          type: 'Pods',
        },
      ],
      min_replicas: 3,
      scale_target_ref: {
        api_version: 'apps/v1',
        kind: 'Deployment',
        name: nameRef(s, 'kubernetes_deployment_v1', 'copilot-cli'),
      },
    });
    expect(SESSION_UTILIZATION_METRIC).toBe('sessionfleet_session_utilization');
    // The autoscaler owns the replica count after the first apply.
    expect(deployment.spec.replicas).toBe('3');
    expect(deployment.lifecycle).toEqual({ ignore_changes: ['spec[0].replicas'] });
  });

  it("announces the agents' /metrics to Prometheus", () => {
    expect(deployment.spec.template.metadata.annotations).toMatchObject({
      'prometheus.io/path': '/metrics',
      'prometheus.io/port': '9090',
      'prometheus.io/scrape': 'true',
    });
  });

  it('admits only the agent port from outside the pod, and the admin port from the monitoring namespace', () => {
    const policy = named(s, 'kubernetes_network_policy_v1', 'copilot-cli');
    expect(policy.spec).toEqual({
      ingress: [
        { ports: [{ port: '8080', protocol: 'TCP' }] },
        {
          from: [{ namespace_selector: { match_labels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
          ports: [{ port: '9090', protocol: 'TCP' }],
        },
      ],
      pod_selector: { match_labels: SELECTOR('copilot-cli') },
      policy_types: ['Ingress'],
    });
  });

  it('runs a Redis with a generated AUTH password, reachable only from the fleet', () => {
    const secret = named(s, 'kubernetes_secret_v1', 'copilot-cli-redis-auth');
    expect(secret.data).toEqual({ password: tf('uuid()') });
    expect(secret.lifecycle).toEqual({ ignore_changes: ['data'] });
    const redis = named(s, 'kubernetes_deployment_v1', 'copilot-cli-redis');
    const server = container(redis, 'redis');
    expect(server.command).toEqual([
      'sh',
      '-c',
      'exec redis-server - "$@" <<EOF\nrequirepass $REDIS_PASSWORD\nEOF\n',
      'redis-server',
    ]);
    expect(envOf(server)).toEqual({
      REDIS_PASSWORD: {
        secret_key_ref: { key: 'password', name: nameRef(s, 'kubernetes_secret_v1', 'copilot-cli-redis-auth') },
      },
    });
    expect(named(s, 'kubernetes_service_v1', 'copilot-cli-redis').spec.selector).toEqual(
      SELECTOR('copilot-cli', 'redis'),
    );
    expect(named(s, 'kubernetes_network_policy_v1', 'copilot-cli-redis').spec).toEqual({
      ingress: [
        {
          from: [{ pod_selector: { match_labels: SELECTOR('copilot-cli') } }],
          ports: [{ port: '6379', protocol: 'TCP' }],
        },
      ],
      pod_selector: { match_labels: SELECTOR('copilot-cli', 'redis') },
      policy_types: ['Ingress'],
    });
    expect(envOf(agent)[AGENT_ENV.redis]).toBe(
      `redis://:$(REDIS_PASSWORD)@${nameRef(s, 'kubernetes_service_v1', 'copilot-cli-redis')}:6379`,
    );
  });

  it('applies the security defaults: no token automount, a non-root agent on a read-only root, requests and limits everywhere', () => {
    for (const workload of Object.values(resourcesOf(s, 'kubernetes_deployment_v1'))) {
      const spec = podSpec(workload);
      expect(spec.automount_service_account_token).toBe(false);
      expect(spec.enable_service_links).toBe(false);
      expect(spec.security_context).toMatchObject({ seccomp_profile: { type: 'RuntimeDefault' } });
      for (const c of spec.container) {
        expect(Object.keys(c.resources.requests).sort(), c.name).toEqual(['cpu', 'memory']);
        expect(Object.keys(c.resources.limits).sort(), c.name).toEqual(['cpu', 'memory']);
        expect(c.security_context.allow_privilege_escalation, c.name).toBe(false);
      }
    }
    expect(agent.security_context).toEqual({
      allow_privilege_escalation: false,
      capabilities: { drop: ['ALL'] },
      read_only_root_filesystem: true,
      run_as_group: '1000',
      run_as_non_root: true,
      run_as_user: '1000',
    });
    // Pod Security Standards "restricted" for the app too, with a writable root by default.
    expect(app.security_context).toEqual({
      allow_privilege_escalation: false,
      capabilities: { drop: ['ALL'] },
      read_only_root_filesystem: false,
      run_as_non_root: true,
      seccomp_profile: { type: 'RuntimeDefault' },
    });
    expect(agent.volume_mount).toContainEqual({ mount_path: '/tmp', name: 'agent-tmp' });
    expect(podSpec(deployment).volume).toContainEqual({ empty_dir: { size_limit: '64Mi' }, name: 'agent-tmp' });
    expect(app.resources).toEqual({ limits: { cpu: '1', memory: '1024Mi' }, requests: { cpu: '1', memory: '1024Mi' } });
    expect(agent.resources).toEqual({
      limits: { cpu: '1', memory: '256Mi' },
      requests: { cpu: '250m', memory: '256Mi' },
    });
  });

  it('exposes what it made, with its defaults resolved', () => {
    expect(fleet.name).toBe('copilot-cli');
    expect(fleet.instances?.deployment).toBeDefined();
    expect(fleet.instances?.statefulSet).toBeUndefined();
    // A reference to the generated Secret's name, so the pods wait for the Secret.
    expect(Token.isUnresolved(fleet.instances?.redis?.authSecretKey.secretName)).toBe(true);
    expect(fleet.instances?.redis?.authSecretKey.key).toBe('password');
    expect(fleet.redis).toEqual({ kind: 'in-cluster', image: 'redis:7.4-alpine', memoryMiB: 128 });
    expect(fleet.storage).toEqual(KubernetesSessionStorage.sharedVolume());
    expect(fleet.tenants).toEqual([]);
    expect(fleet.scaleOn).toBe('sessions');
    expect(fleet.targetSessionUtilization).toBe(0.8);
  });

  it('matches the snapshot', () => {
    expect(s.json).toMatchSnapshot();
  });
});

describe('an MCP Streamable HTTP fleet with an existing Redis', () => {
  const { s, fleet } = fleetOf(MCP, 'McpServers');
  const deployment = named(s, 'kubernetes_deployment_v1', 'mcp-servers');
  const agent = container(deployment, 'agent');

  it('reads the Redis URL from its Secret and runs no Redis of its own', () => {
    expect(envOf(agent)[AGENT_ENV.redis]).toEqual({ secret_key_ref: { key: 'url', name: 'mcp-redis' } });
    expect(Object.keys(resourcesOf(s, 'kubernetes_deployment_v1'))).toHaveLength(1);
    expect(resourcesOf(s, 'kubernetes_secret_v1')).toEqual({});
    expect(envOf(agent).REDIS_PASSWORD).toBeUndefined();
  });

  it('fronts the app over HTTP, probes its health path and trusts the principal header', () => {
    expect(agent.args).toEqual([
      '--policy',
      '/etc/sessionfleet/policy.json',
      '--upstream',
      'http://127.0.0.1:3000',
      '--listen',
      '0.0.0.0:8080',
      '--admin-listen',
      '0.0.0.0:9090',
      '--fleet',
      fleet.fleetName,
      '--principal-header',
      'x-authenticated-user',
      '--health-path',
      '/health',
    ]);
    expect(envOf(container(deployment, 'app'))).toEqual({ PORT: '3000' });
  });

  it('keeps ephemeral session state in an emptyDir and no claim', () => {
    expect(resourcesOf(s, 'kubernetes_persistent_volume_claim_v1')).toEqual({});
    expect(podSpec(deployment).volume).toContainEqual({ empty_dir: {}, name: 'session-state' });
    expect(fleet.policy.sharedSessionState).toBe(false);
    expect(fleet.policy.expiredSessionStatus).toBe(404);
  });

  it('matches the snapshot', () => {
    expect(s.json).toMatchSnapshot();
  });
});

describe('an HTTP fleet whose principals and tenants come from an authenticating proxy', () => {
  const { s, fleet } = fleetOf(
    {
      ...MCP,
      policy: { affinity: { type: 'mcp-streamable-http' }, maxInstances: 20, sessionsPerTenant: 40 },
      tenantHeader: 'x-authenticated-tenant',
    },
    'McpServers',
  );
  const agent = container(named(s, 'kubernetes_deployment_v1', 'mcp-servers'), 'agent');

  it('passes the tenant header to every agent as --tenant-header, after the principal header', () => {
    expect(agent.args).toEqual([
      '--policy',
      '/etc/sessionfleet/policy.json',
      '--upstream',
      'http://127.0.0.1:3000',
      '--listen',
      '0.0.0.0:8080',
      '--admin-listen',
      '0.0.0.0:9090',
      '--fleet',
      fleet.fleetName,
      '--principal-header',
      'x-authenticated-user',
      '--tenant-header',
      'x-authenticated-tenant',
      '--health-path',
      '/health',
    ]);
    expect(agent.args).toEqual(
      agentArgs({
        policy: fleet.policy,
        appPort: 3000,
        principalHeader: 'x-authenticated-user',
        tenantHeader: 'x-authenticated-tenant',
        appHealthPath: '/health',
        fleetName: fleet.fleetName,
      }),
    );
  });

  it('names no tenant of its own: outside tenant isolation the header is where tenants come from', () => {
    expect(envOf(agent)[AGENT_ENV.tenant]).toBeUndefined();
    expect(fleet.policy.sessionsPerTenant).toBe(40);
  });

  it('passes a tenant header known only at apply time through unchecked', () => {
    const withVariable = synth((scope: Construct) => {
      const tenantHeader = new TerraformVariable(scope, 'tenant_header', { type: 'string' }).stringValue;
      new KubernetesSessionFleet(scope, 'McpServers', { ...MCP, tenantHeader });
    });
    const args: string[] = container(named(withVariable, 'kubernetes_deployment_v1', 'mcp-servers'), 'agent').args;
    expect(args.slice(args.indexOf('--tenant-header'))).toEqual([
      '--tenant-header',
      tf('var.tenant_header'),
      '--health-path',
      '/health',
    ]);
  });
});

describe('autoscaling', () => {
  it('falls back to CPU utilization when no custom-metrics adapter serves the session gauge', () => {
    const { s } = fleetOf({ ...MCP, scaleOn: 'cpu', targetCpuUtilizationPercent: 60 }, 'McpServers');
    expect(s.text).toHaveResourceWithProperties(HorizontalPodAutoscalerV2, {
      spec: {
        metric: [
          { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 60 } } },
        ],
      },
    });
  });

  it('writes the session-utilization target as an exact quantity', () => {
    const { s } = fleetOf({ ...MCP, targetSessionUtilization: 0.65 }, 'McpServers');
    const hpa = named(s, 'kubernetes_horizontal_pod_autoscaler_v2', 'mcp-servers');
    expect(hpa.spec.metric[0].pods.target).toEqual({ average_value: '650m', type: 'AverageValue' });
    const full = fleetOf({ ...MCP, targetSessionUtilization: 1 }, 'McpServers').s;
    expect(named(full, 'kubernetes_horizontal_pod_autoscaler_v2', 'mcp-servers').spec.metric[0].pods.target).toEqual({
      average_value: '1',
      type: 'AverageValue',
    });
  });
});

describe('session isolation with recycling', () => {
  const props: KubernetesSessionFleetProps = {
    policy: { isolation: 'session', affinity: { type: 'mcp-streamable-http' }, maxInstances: 5 },
    app: { image: 'your-registry/mcp-server:1.0.0', port: 3000 },
    recycleAfterSession: true,
  };
  const { s, fleet } = fleetOf(props, 'Sandboxes');
  const deployment = named(s, 'kubernetes_deployment_v1', 'sandboxes');

  it('sets recycleAfterSession in the policy the agents read', () => {
    expect(fleet.policy.recycleAfterSession).toBe(true);
    expect(fleet.policy.sessionsPerInstance).toBe(1);
    const content = named(s, 'kubernetes_config_map_v1', 'sandboxes-policy').data['policy.json'];
    expect(JSON.parse(content).recycleAfterSession).toBe(true);
  });

  it('leaves nothing behind: session state in an emptyDir, restartPolicy Always', () => {
    expect(fleet.storage).toEqual(KubernetesSessionStorage.ephemeral());
    expect(podSpec(deployment).volume).toContainEqual({ empty_dir: {}, name: 'session-state' });
    expect(podSpec(deployment).restart_policy).toBe('Always');
    expect(resourcesOf(s, 'kubernetes_persistent_volume_claim_v1')).toEqual({});
  });

  it('lets the agent, and only the agent, delete its own pod so the next session gets a fresh one', () => {
    expect(named(s, 'kubernetes_service_account_v1', 'sandboxes-recycler').automount_service_account_token).toBe(false);
    expect(named(s, 'kubernetes_role_v1', 'sandboxes-recycler').rule).toEqual([
      { api_groups: [''], resources: ['pods'], verbs: ['get', 'delete'] },
    ]);
    const binding = named(s, 'kubernetes_role_binding_v1', 'sandboxes-recycler');
    const account = nameRef(s, 'kubernetes_service_account_v1', 'sandboxes-recycler');
    expect(binding.subject).toEqual([{ kind: 'ServiceAccount', name: account, namespace: 'default' }]);
    expect(binding.role_ref.kind).toBe('Role');
    const spec = podSpec(deployment);
    expect(spec.service_account_name).toBe(account);
    expect(spec.automount_service_account_token).toBe(false);
    expect(container(deployment, 'agent').volume_mount).toContainEqual({
      mount_path: '/var/run/secrets/kubernetes.io/serviceaccount',
      name: 'agent-api-access',
      read_only: true,
    });
    expect(container(deployment, 'app').volume_mount.map((m: Json) => m.name)).toEqual(['session-state']);
    const projected = spec.volume.find((v: Json) => v.name === 'agent-api-access').projected[0].sources;
    expect(projected[0]).toEqual({ service_account_token: { expiration_seconds: 3600, path: 'token' } });
  });

  it('gives each instance the 2 vCPU that isolation needs by default', () => {
    expect(container(deployment, 'app').resources.requests.cpu).toBe('2');
    expect(fleet.policy.instanceVcpu).toBe(2);
  });

  it('matches the snapshot', () => {
    expect(s.json).toMatchSnapshot();
  });
});

describe('sticky-only sessions on per-instance volumes', () => {
  const { s, fleet } = fleetOf(
    {
      policy: { affinity: { type: 'header', headerName: 'x-session' }, maxInstances: 4 },
      app: { image: 'your-registry/service:2', port: 5000 },
      storage: KubernetesSessionStorage.perInstanceVolume({ sizeGiB: 5, storageClassName: 'managed-csi' }),
    },
    'Sticky',
  );
  const statefulSet = named(s, 'kubernetes_stateful_set_v1', 'sticky');

  it('runs a StatefulSet with a volume claim template and a headless peer Service', () => {
    expect(resourcesOf(s, 'kubernetes_deployment_v1')).not.toHaveProperty('Sticky_Instances_Deployment');
    expect(statefulSet.spec.service_name).toBe(nameRef(s, 'kubernetes_service_v1', 'sticky-peers'));
    expect(statefulSet.spec.pod_management_policy).toBe('Parallel');
    expect(statefulSet.spec.volume_claim_template).toEqual([
      {
        metadata: {
          labels: { ...SELECTOR('sticky') },
          name: 'session-state',
        },
        spec: {
          access_modes: ['ReadWriteOnce'],
          resources: { requests: { storage: '5Gi' } },
          storage_class_name: 'managed-csi',
        },
      },
    ]);
    expect(podSpec(statefulSet).volume.map((v: Json) => v.name)).toEqual(['policy', 'agent-tmp']);
    expect(container(statefulSet, 'app').volume_mount).toEqual([
      { mount_path: '/root/.copilot/session-state', name: 'session-state' },
    ]);
    expect(named(s, 'kubernetes_service_v1', 'sticky-peers').spec).toMatchObject({
      cluster_ip: 'None',
      publish_not_ready_addresses: true,
    });
    expect(resourcesOf(s, 'kubernetes_persistent_volume_claim_v1')).toEqual({});
  });

  it('scales the StatefulSet and keeps session state unshared', () => {
    const hpa = named(s, 'kubernetes_horizontal_pod_autoscaler_v2', 'sticky');
    expect(hpa.spec.scale_target_ref).toEqual({
      api_version: 'apps/v1',
      kind: 'StatefulSet',
      name: nameRef(s, 'kubernetes_stateful_set_v1', 'sticky'),
    });
    expect(fleet.policy.sharedSessionState).toBe(false);
    expect(fleet.instances?.statefulSet).toBeDefined();
  });

  it('matches the snapshot', () => {
    expect(s.json).toMatchSnapshot();
  });
});

describe('a one-instance fleet on a ReadWriteOnce volume', () => {
  const { s, fleet } = fleetOf(
    {
      policy: { affinity: { type: 'cookie' }, maxInstances: 1 },
      app: { image: 'your-registry/service:2', port: 5000 },
      storage: KubernetesSessionStorage.sharedVolume({ accessMode: 'ReadWriteOnce' }),
    },
    'Single',
  );

  it('recreates the pod instead of surging a second one onto a volume only one node mounts', () => {
    expect(named(s, 'kubernetes_deployment_v1', 'single').spec.strategy).toEqual({ type: 'Recreate' });
  });

  it('needs no Redis: the embedded store serves one instance', () => {
    expect(fleet.redis).toEqual({ kind: 'none' });
    expect(envOf(container(named(s, 'kubernetes_deployment_v1', 'single'), 'agent'))[AGENT_ENV.redis]).toBeUndefined();
    expect(resourceCounts(s).kubernetes_deployment_v1).toBe(1);
  });
});

describe('unresolved tokens', () => {
  it('are passed through unchecked and resolved by Terraform', () => {
    const s = synth((scope) => {
      const maxInstances = new TerraformVariable(scope, 'max_instances', { type: 'number' });
      const namespace = new TerraformVariable(scope, 'namespace', { type: 'string' });
      const cpu = new TerraformVariable(scope, 'cpu', { type: 'string' });
      new KubernetesSessionFleet(scope, 'Fleet', {
        namespace: namespace.stringValue,
        policy: { affinity: { type: 'mcp-streamable-http' }, maxInstances: Token.asNumber(maxInstances.value) },
        app: { image: 'your-registry/mcp-server:1.0.0', port: 3000, cpuRequest: cpu.stringValue },
      });
    });
    const hpa = named(s, 'kubernetes_horizontal_pod_autoscaler_v2', 'fleet');
    expect(hpa.spec.max_replicas).toBe(tf('var.max_instances'));
    expect(hpa.metadata.namespace).toBe(tf('var.namespace'));
    const policy = named(s, 'kubernetes_config_map_v1', 'fleet-policy').data['policy.json'];
    expect(policy).toMatch(/^\$\{jsonencode\(\{.*"maxInstances" = var\.max_instances/s);
    const annotations = named(s, 'kubernetes_deployment_v1', 'fleet').spec.template.metadata.annotations;
    expect(annotations['sessionfleet/policy-sha256']).toMatch(/^\$\{sha256\(jsonencode\(/);
    expect(container(named(s, 'kubernetes_deployment_v1', 'fleet'), 'app').resources.requests.cpu).toBe(tf('var.cpu'));
  });

  it('turn the arithmetic on them into Terraform expressions', () => {
    const s = synth((scope) => {
      const n = (name: string) => Token.asNumber(new TerraformVariable(scope, name, { type: 'number' }).value);
      new KubernetesSessionFleet(scope, 'Fleet', {
        policy: { affinity: { type: 'mcp-streamable-http' }, drainTimeoutSeconds: n('drain') },
        app: { image: 'your-registry/mcp-server:1.0.0', port: 3000, startupTimeoutSeconds: n('startup') },
        targetSessionUtilization: n('target'),
        preStopDelaySeconds: n('delay'),
      });
    });
    const deployment = named(s, 'kubernetes_deployment_v1', 'fleet');
    expect(podSpec(deployment).termination_grace_period_seconds).toBe(tf('sum([sum([var.delay, var.drain]), 15])'));
    expect(container(deployment, 'app').lifecycle.pre_stop[0].exec.command).toEqual([
      'sleep',
      tf('sum([var.delay, var.drain])'),
    ]);
    expect(container(deployment, 'agent').lifecycle.pre_stop[0].exec.command).toEqual(['sleep', tf('var.delay')]);
    expect(container(deployment, 'app').startup_probe.failure_threshold).toBe(tf('ceil((var.startup / 2))'));
    const hpa = named(s, 'kubernetes_horizontal_pod_autoscaler_v2', 'fleet');
    expect(hpa.spec.metric[0].pods.target.average_value).toBe(tf('var.target'));
  });
});

describe('synthesized output', () => {
  const both = (): Synthesized =>
    synth((scope) => {
      new KubernetesSessionFleet(scope, 'CopilotCli', COPILOT);
      new KubernetesSessionFleet(scope, 'McpServers', MCP);
    });

  it('is identical across two runs', () => {
    expect(both().text).toBe(both().text);
  });

  it('holds no machine paths, timestamps or secret values', () => {
    const { text } = both();
    expect(text).not.toContain(REPO_ROOT);
    expect(text).not.toContain(`${tmpdir()}/`);
    expect(text).not.toMatch(/"\/(home|work|Users)\//);
    expect(text).not.toMatch(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/);
    expect(text).toHaveResourceWithProperties(ConfigMapV1, { metadata: { name: 'mcp-servers-policy' } });
  });
});
