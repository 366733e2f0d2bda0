/**
 * A highly available Redis the user runs (issue 18 §1): `KubernetesFleetRedis.sentinel()` and
 * `.cluster()` give the agents a connection string in the forms the agent reads, its password
 * filled in by Kubernetes from the chart's own Secret; bad endpoints fail at construction.
 */
import type { Construct } from 'constructs';
import { describe, expect, it } from 'vitest';
import {
  KubernetesFleetRedis,
  KubernetesSessionFleet,
  type KubernetesSessionFleetProps,
  KubernetesTrustedProxies,
} from '../../constructs/index.js';
import { AGENT_ENV } from '../../policy/agent-interface.js';
import { parseRedisUrl } from '../../policy/redis-url.js';
import { constructionError, container, envOf, type Json, named, synth } from './kubernetes-test-helpers.js';

const BASE: KubernetesSessionFleetProps = {
  name: 'tools',
  policy: { affinity: { type: 'mcp-streamable-http' }, maxInstances: 4 },
  app: { image: 'your-registry/mcp-server:1.0.0', port: 3000 },
  trustedProxies: KubernetesTrustedProxies.anySource(),
};
const BITNAMI_PASSWORD = { secretName: 'fleet-redis', key: 'redis-password' };

function agentEnv(redis: KubernetesFleetRedis): Json[] {
  const s = synth((scope: Construct) => {
    new KubernetesSessionFleet(scope, 'Fleet', { ...BASE, redis });
  });
  // No Redis of the fleet's own: the user runs it.
  expect(s.json.resource.kubernetes_deployment_v1).not.toHaveProperty('Fleet_Instances_Redis_Deployment_0');
  return container(named(s, 'kubernetes_deployment_v1', 'tools'), 'agent').env;
}

/** What the agent reads once Kubernetes has expanded `$(VAR)` from the variables defined before it. */
function expanded(env: Json[], values: Record<string, string>): string {
  const seen: Record<string, string> = {};
  for (const entry of env) {
    const value =
      entry.value_from?.secret_key_ref !== undefined
        ? values[`${entry.value_from.secret_key_ref.name}/${entry.value_from.secret_key_ref.key}`]!
        : String(entry.value ?? '').replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, name) => seen[name] ?? all);
    seen[entry.name] = value;
  }
  return seen[AGENT_ENV.redis]!;
}

describe('KubernetesFleetRedis.sentinel and .cluster', () => {
  it("gives the agents the Bitnami sentinel chart's endpoint and password, sentinels authenticated too", () => {
    const env = agentEnv(
      KubernetesFleetRedis.sentinel({ sentinels: ['fleet-redis:26379'], passwordSecret: BITNAMI_PASSWORD }),
    );
    // The password is never in the synthesized JSON: it comes from the Secret, before the URL names it.
    expect(envOf({ env }).REDIS_PASSWORD).toEqual({
      secret_key_ref: { name: 'fleet-redis', key: 'redis-password' },
    });
    const names = env.map((entry: Json) => entry.name);
    expect(names.indexOf('REDIS_PASSWORD')).toBeLessThan(names.indexOf(AGENT_ENV.redis));
    expect(JSON.stringify(env)).not.toContain('s3cret');
    const url = expanded(env, { 'fleet-redis/redis-password': 's3cret' });
    expect(parseRedisUrl(url)).toEqual({
      endpoint: {
        kind: 'sentinel',
        tls: false,
        sentinels: [{ host: 'fleet-redis', port: 26379 }],
        primaryName: 'mymaster',
        password: 's3cret',
        sentinelPassword: 's3cret',
      },
    });
  });

  it('names several sentinels, a primary name and TLS; sentinels without a password when told so', () => {
    const env = agentEnv(
      KubernetesFleetRedis.sentinel({
        sentinels: ['redis-node-0.redis-headless:26379', 'redis-node-1.redis-headless:26379'],
        primaryName: 'fleet-primary',
        passwordSecret: BITNAMI_PASSWORD,
        sentinelsUsePassword: false,
        tls: true,
      }),
    );
    const parsed = parseRedisUrl(expanded(env, { 'fleet-redis/redis-password': 'pw' }));
    expect(parsed).toEqual({
      endpoint: {
        kind: 'sentinel',
        tls: true,
        sentinels: [
          { host: 'redis-node-0.redis-headless', port: 26379 },
          { host: 'redis-node-1.redis-headless', port: 26379 },
        ],
        primaryName: 'fleet-primary',
        password: 'pw',
      },
    });
  });

  it('gives the agents a cluster connection string, with and without a password', () => {
    const withPassword = agentEnv(
      KubernetesFleetRedis.cluster({ nodes: ['redis-cluster:6379'], passwordSecret: BITNAMI_PASSWORD, tls: true }),
    );
    expect(parseRedisUrl(expanded(withPassword, { 'fleet-redis/redis-password': 'pw' }))).toEqual({
      endpoint: { kind: 'cluster', tls: true, nodes: [{ host: 'redis-cluster', port: 6379 }], password: 'pw' },
    });
    const open = agentEnv(KubernetesFleetRedis.cluster({ nodes: ['a:7000', 'b:7001'] }));
    expect(envOf({ env: open }).REDIS_PASSWORD).toBeUndefined();
    expect(open.some((entry: Json) => entry.name === 'REDIS_PASSWORD')).toBe(false);
    expect(parseRedisUrl(expanded(open, {}))).toEqual({
      endpoint: {
        kind: 'cluster',
        tls: false,
        nodes: [
          { host: 'a', port: 7000 },
          { host: 'b', port: 7001 },
        ],
      },
    });
  });

  it.each<[string, KubernetesFleetRedis, string]>([
    [
      'no sentinel',
      KubernetesFleetRedis.sentinel({ sentinels: [] }),
      "stack/Fleet: 'redis.sentinels' ([]) must name at least one host:port",
    ],
    [
      'a sentinel without a port',
      KubernetesFleetRedis.sentinel({ sentinels: ['fleet-redis'] }),
      `stack/Fleet: 'redis.sentinels[0]' ("fleet-redis") must be host:port (port 1–65535)`,
    ],
    [
      'two endpoints in one entry',
      KubernetesFleetRedis.cluster({ nodes: ['a:7000', 'b:7000,c:7000'] }),
      `stack/Fleet: 'redis.nodes[1]' ("b:7000,c:7000") must be host:port (port 1–65535)`,
    ],
    [
      'a port out of range',
      KubernetesFleetRedis.cluster({ nodes: ['a:70000'] }),
      `stack/Fleet: 'redis.nodes[0]' ("a:70000") must be host:port (port 1–65535)`,
    ],
    [
      'a primary name with a slash',
      KubernetesFleetRedis.sentinel({ sentinels: ['s:26379'], primaryName: 'a/b' }),
      `stack/Fleet: 'redis.primaryName' ("a/b") must be 1–64 letters, digits, '.', '_' or '-'`,
    ],
    [
      'a bad Secret key',
      KubernetesFleetRedis.cluster({ nodes: ['a:7000'], passwordSecret: { secretName: 'r', key: 'bad key' } }),
      `stack/Fleet: 'redis.passwordSecret.key' ("bad key") must be a Secret key: letters, digits, '-', '_' and '.', at most 253 characters`,
    ],
  ])('refuses %s, naming the prop, the value and the rule', (_name, redis, message) => {
    expect(constructionError((stack) => new KubernetesSessionFleet(stack, 'Fleet', { ...BASE, redis }))).toContain(
      message,
    );
  });
});
