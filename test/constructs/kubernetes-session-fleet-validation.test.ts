/**
 * Every invalid combination fails at construction with the construct path, the prop, the value and
 * the rule; every message is asserted whole.
 */
import { TerraformStack, TerraformVariable, Testing, Token } from 'cdktf';
import { describe, expect, it } from 'vitest';
import {
  KubernetesFleetRedis,
  KubernetesSessionFleet,
  type KubernetesSessionFleetProps,
  KubernetesSessionStorage,
  KubernetesTrustedProxies,
} from '../../constructs/index.js';
import { constructionError } from './kubernetes-test-helpers.js';

const BASE: KubernetesSessionFleetProps = {
  policy: { affinity: { type: 'mcp-streamable-http' } },
  app: { image: 'your-registry/mcp-server:1.0.0', port: 3000 },
  // The identity-header tests below are about the headers, not about who may send them.
  trustedProxies: KubernetesTrustedProxies.anySource(),
};
const APP = BASE.app;
const TENANTS = { isolation: 'tenant', affinity: { type: 'cookie' } } as const;
const DNS_LABEL_1035_24 =
  "must be a DNS label that starts with a letter: lowercase letters, digits and '-', ending with a letter or digit, at most 24 characters";
const DNS_LABEL = (max: number) =>
  `must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most ${max} characters`;
const DNS_SUBDOMAIN =
  "must be a DNS subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters";
const SECRET_KEY = "must be a Secret key: letters, digits, '-', '_' and '.', at most 253 characters";
const ENV_NAME = "must be an environment variable name: letters, digits, '_', '-' and '.', not starting with a digit";

function errorOf(props: Partial<KubernetesSessionFleetProps>): string {
  return constructionError((stack) => new KubernetesSessionFleet(stack, 'Fleet', { ...BASE, ...props }));
}

describe('KubernetesSessionFleet validation: names and labels', () => {
  it.each<[string, Partial<KubernetesSessionFleetProps>, string]>([
    ['an invalid name', { name: 'Copilot_CLI' }, `stack/Fleet: 'name' ("Copilot_CLI") ${DNS_LABEL_1035_24}`],
    ['an invalid namespace', { namespace: 'Agents' }, `stack/Fleet: 'namespace' ("Agents") ${DNS_LABEL(63)}`],
    [
      'a label the construct selects pods with',
      { labels: { 'app.kubernetes.io/instance': 'x' } },
      `stack/Fleet: 'labels.app.kubernetes.io/instance' ("x") is set by the construct: it selects the fleet's pods`,
    ],
    [
      'an invalid label key',
      { labels: { 'bad key': 'x' } },
      `stack/Fleet: 'labels' ("bad key") is not a label key: an optional DNS-subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.'`,
    ],
    [
      'an invalid label value',
      { labels: { team: 'no spaces' } },
      `stack/Fleet: 'labels.team' ("no spaces") must be a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
    ],
  ])('rejects %s', (_, props, message) => {
    expect(errorOf(props)).toBe(message);
  });

  it('says when a name derived from the construct id does not fit', () => {
    expect(
      constructionError((stack) => new KubernetesSessionFleet(stack, 'VeryLongFleetNameThatIsTooLong', BASE)),
    ).toBe(
      `stack/VeryLongFleetNameThatIsTooLong: 'name' ("very-long-fleet-name-that-is-too-long") is derived from the construct id and ${DNS_LABEL_1035_24}: set 'name'`,
    );
  });
});

describe('KubernetesSessionFleet validation: the containers', () => {
  it.each<[string, Partial<KubernetesSessionFleetProps>, string]>([
    ['an empty app image', { app: { ...APP, image: ' ' } }, `stack/Fleet: 'app.image' (" ") must not be empty`],
    [
      'a port out of range',
      { app: { ...APP, port: 70000 } },
      `stack/Fleet: 'app.port' (70000) must be a whole number between 1 and 65535`,
    ],
    [
      "the agent's port",
      { app: { ...APP, port: 8080 } },
      `stack/Fleet: 'app.port' (8080) is the agent's: the pod's containers share one network, and 8080 and 9090 belong to the agent`,
    ],
    [
      'a relative health path',
      { app: { ...APP, healthPath: 'health' } },
      `stack/Fleet: 'app.healthPath' ("health") must start with /`,
    ],
    [
      'a startup timeout of 0',
      { app: { ...APP, startupTimeoutSeconds: 0 } },
      `stack/Fleet: 'app.startupTimeoutSeconds' (0) must be a whole number between 1 and 3600`,
    ],
    [
      'an invalid variable name',
      { app: { ...APP, env: { '1BAD': 'x' } } },
      `stack/Fleet: 'app.env' ("1BAD") ${ENV_NAME}`,
    ],
    [
      'a variable that is both plain and secret',
      { app: { ...APP, env: { TOKEN: 'x' }, secretEnv: { TOKEN: { secretName: 'token', key: 'value' } } } },
      `stack/Fleet: 'app.env' ("TOKEN") is also in 'app.secretEnv': a variable comes from one place`,
    ],
    [
      'an invalid Secret reference (both problems at once)',
      { app: { ...APP, secretEnv: { TOKEN: { secretName: 'Bad_Name', key: 'bad key' } } } },
      [
        'stack/Fleet: 2 problems:',
        `  - 'app.secretEnv.TOKEN.secretName' ("Bad_Name") ${DNS_SUBDOMAIN}`,
        `  - 'app.secretEnv.TOKEN.key' ("bad key") ${SECRET_KEY}`,
      ].join('\n'),
    ],
    [
      'a CPU request that is no quantity',
      { app: { ...APP, cpuRequest: 'two' } },
      `stack/Fleet: 'app.cpuRequest' ("two") must be a CPU quantity such as "2", "1500m" or "0.5"`,
    ],
    [
      'a CPU request above the limit',
      { app: { ...APP, cpuRequest: '2', cpuLimit: '1' } },
      `stack/Fleet: 'app.cpuRequest' ("2") must not exceed 'app.cpuLimit' ("1")`,
    ],
    [
      'no memory',
      { app: { ...APP, memoryRequestMiB: 0 } },
      `stack/Fleet: 'app.memoryRequestMiB' (0) must be a whole number between 1 and 1048576`,
    ],
    [
      'a memory request above the limit',
      { app: { ...APP, memoryRequestMiB: 2048, memoryLimitMiB: 1024 } },
      `stack/Fleet: 'app.memoryRequestMiB' (2048) must not exceed 'app.memoryLimitMiB' (1024)`,
    ],
    [
      'a broken agent',
      { agent: { image: '', logLevel: 'verbose' as 'info', cpuLimit: 'x' } },
      [
        'stack/Fleet: 3 problems:',
        `  - 'agent.cpuLimit' ("x") must be a CPU quantity such as "2", "1500m" or "0.5"`,
        `  - 'agent.image' ("") must not be empty`,
        `  - 'agent.logLevel' ("verbose") must be one of fatal, error, warn, info, debug, trace, silent`,
      ].join('\n'),
    ],
  ])('rejects %s', (_, props, message) => {
    expect(errorOf(props)).toBe(message);
  });
});

describe('KubernetesSessionFleet validation: isolation needs 2 vCPU (SPEC.md §2)', () => {
  it("checks the app's CPU request", () => {
    expect(
      errorOf({
        policy: { isolation: 'session', affinity: { type: 'mcp-streamable-http' } },
        app: { ...APP, cpuRequest: '1' },
      }),
    ).toBe(
      `stack/Fleet: 'app.cpuRequest' ("1"): session isolation requires an instance with at least 2 vCPU (instanceVcpu is 1)`,
    );
  });

  it('checks the CPU limit when it is the request too', () => {
    expect(
      errorOf({
        policy: { isolation: 'request', affinity: { type: 'none' } },
        app: { ...APP, cpuLimit: '1500m' },
      }),
    ).toBe(
      `stack/Fleet: 'app.cpuLimit' ("1500m"): request isolation requires an instance with at least 2 vCPU (instanceVcpu is 1.5)`,
    );
  });

  it('accepts 2 vCPU, the default under isolation', () => {
    const stack = new TerraformStack(Testing.app(), 'stack');
    const fleet = new KubernetesSessionFleet(stack, 'Fleet', {
      ...BASE,
      policy: { isolation: 'request', affinity: { type: 'none' } },
    });
    expect(fleet.app.cpuRequest).toBe('2');
    expect(fleet.policy.instanceVcpu).toBe(2);
  });
});

describe('KubernetesSessionFleet validation: the policy and the props around it', () => {
  it.each<[string, Partial<KubernetesSessionFleetProps>, string]>([
    [
      'a policy the shared model rejects',
      { policy: { affinity: { type: 'mcp-streamable-http' }, sessionsPerInstance: 300 } },
      `stack/Fleet: 'policy.sessionsPerInstance' (300) must be between 1 and 200`,
    ],
    [
      'an upstream token for a server that is no Copilot CLI',
      { upstreamToken: { secretName: 'token', key: 'value' } },
      `stack/Fleet: 'upstreamToken' ("token") is presented to a Copilot CLI only: it needs 'policy.affinity.type' "copilot-jsonrpc" (it is "mcp-streamable-http")`,
    ],
    [
      'COPILOT_CONNECTION_TOKEN set by hand beside upstreamToken',
      {
        policy: { affinity: { type: 'copilot-jsonrpc' } },
        upstreamToken: { secretName: 'token', key: 'value' },
        app: { ...APP, env: { COPILOT_CONNECTION_TOKEN: 'x' } },
      },
      `stack/Fleet: 'app.env' ("COPILOT_CONNECTION_TOKEN") is set from 'upstreamToken', so that the Copilot CLI accepts the agent alone: remove it here`,
    ],
    [
      'JWT mode beside a trusted principal header',
      {
        jwt: { issuer: 'https://idp.example.com', audience: 'https://mcp.example.com/' },
        principalHeader: 'x-user',
        trustedProxies: KubernetesTrustedProxies.anySource(),
      },
      `stack/Fleet: 'principalHeader' cannot be used with 'jwt': the principal comes either from a verified bearer token or from a trusted proxy's header, not both`,
    ],
    [
      'a JWT issuer over plain HTTP',
      { jwt: { issuer: 'http://idp.example.com', audience: 'https://mcp.example.com/' } },
      `stack/Fleet: 'jwt.issuer' ("http://idp.example.com") must be an https:// URL without a fragment`,
    ],
    [
      'an invalid principal header',
      { principalHeader: 'bad header' },
      `stack/Fleet: 'principalHeader' ("bad header") must be a valid HTTP header name (letters, digits and !#$%&'*+-.^_\`|~)`,
    ],
    [
      'an invalid tenant header',
      { tenantHeader: 'x tenant' },
      `stack/Fleet: 'tenantHeader' ("x tenant") must be a valid HTTP header name (letters, digits and !#$%&'*+-.^_\`|~)`,
    ],
    [
      'a tenant header that is the principal header (names are case-insensitive)',
      { principalHeader: 'X-Authenticated-User', tenantHeader: 'x-authenticated-user' },
      `stack/Fleet: 'tenantHeader' ("x-authenticated-user") must not be the header naming the principal ('principalHeader' "X-Authenticated-User")`,
    ],
    [
      'a tenant header on a Copilot CLI fleet, whose front reads no HTTP headers',
      { policy: { affinity: { type: 'copilot-jsonrpc' } }, tenantHeader: 'x-tenant-id' },
      `stack/Fleet: 'tenantHeader' ("x-tenant-id") is read by the HTTP front only, and 'policy.affinity.type' "copilot-jsonrpc" is served by the Copilot front, which has no HTTP headers: name a Copilot client's tenant in its entry of the principals file ('principals') instead`,
    ],
    [
      'a tenant header that carries the session id under header affinity',
      { policy: { affinity: { type: 'header', headerName: 'X-Session' } }, tenantHeader: 'x-session' },
      `stack/Fleet: 'tenantHeader' ("x-session") must not be the header that carries the session id ('policy.affinity.headerName' "X-Session")`,
    ],
    [
      'a principal header on a Copilot CLI fleet, whose front reads no HTTP headers',
      { policy: { affinity: { type: 'copilot-jsonrpc' } }, principalHeader: 'x-user' },
      `stack/Fleet: 'principalHeader' ("x-user") is read by the HTTP front only, and 'policy.affinity.type' "copilot-jsonrpc" is served by the Copilot front, which has no HTTP headers: name a Copilot client's principal in its entry of the principals file ('principals') instead`,
    ],
    [
      'a principal header that carries the session id under header affinity',
      { policy: { affinity: { type: 'header', headerName: 'X-Session' } }, principalHeader: 'x-session' },
      `stack/Fleet: 'principalHeader' ("x-session") must not be the header that carries the session id ('policy.affinity.headerName' "X-Session")`,
    ],
    [
      'invalid scaling, service and lifecycle settings (all at once)',
      {
        scaleOn: 'memory' as 'cpu',
        targetSessionUtilization: 1.5,
        targetCpuUtilizationPercent: 0,
        serviceType: 'ExternalName' as 'ClusterIP',
        metricsScrapeNamespaces: ['Monitoring'],
        preStopDelaySeconds: -1,
      },
      [
        'stack/Fleet: 6 problems:',
        `  - 'scaleOn' ("memory") must be one of "sessions", "cpu"`,
        `  - 'targetSessionUtilization' (1.5) must be above 0 and at most 1`,
        `  - 'targetCpuUtilizationPercent' (0) must be a whole number between 1 and 100`,
        `  - 'serviceType' ("ExternalName") must be one of "ClusterIP", "NodePort", "LoadBalancer"`,
        `  - 'metricsScrapeNamespaces[0]' ("Monitoring") ${DNS_LABEL(63)}`,
        `  - 'preStopDelaySeconds' (-1) must be a whole number between 0 and 300`,
      ].join('\n'),
    ],
    [
      'recycling under shared isolation',
      { recycleAfterSession: true },
      `stack/Fleet: 'recycleAfterSession' (true) needs session isolation (isolation is "shared")`,
    ],
    [
      'recycleAfterSession set twice, differently',
      {
        policy: { isolation: 'session', affinity: { type: 'mcp-streamable-http' }, recycleAfterSession: false },
        recycleAfterSession: true,
      },
      `stack/Fleet: 'recycleAfterSession' (true) contradicts 'policy.recycleAfterSession' (false): set it in one place`,
    ],
    [
      'recycling onto storage that outlives the pod',
      {
        policy: { isolation: 'session', affinity: { type: 'mcp-streamable-http' } },
        recycleAfterSession: true,
        storage: KubernetesSessionStorage.sharedVolume(),
      },
      `stack/Fleet: 'storage' (sharedVolume, ReadWriteMany) outlives the pod, so a recycled instance would leave its session behind: use KubernetesSessionStorage.ephemeral() with recycleAfterSession`,
    ],
  ])('rejects %s', (_, props, message) => {
    expect(errorOf(props)).toBe(message);
  });
});

describe('KubernetesSessionFleet validation: storage and Redis', () => {
  it.each<[string, Partial<KubernetesSessionFleetProps>, string]>([
    [
      'a ReadWriteOnce volume for many instances',
      { storage: KubernetesSessionStorage.sharedVolume({ accessMode: 'ReadWriteOnce' }) },
      `stack/Fleet: 'storage.accessMode' ("ReadWriteOnce") lets one node mount the volume, so 'policy.maxInstances' (10) must be 1: use "ReadWriteMany" or KubernetesSessionStorage.perInstanceVolume()`,
    ],
    [
      'a broken volume (all problems at once)',
      {
        storage: KubernetesSessionStorage.sharedVolume({ mountPath: 'relative', sizeGiB: 0, storageClassName: 'Bad' }),
      },
      [
        'stack/Fleet: 3 problems:',
        `  - 'storage.mountPath' ("relative") must be an absolute path`,
        `  - 'storage.sizeGiB' (0) must be a whole number between 1 and 65536`,
        `  - 'storage.storageClassName' ("Bad") ${DNS_SUBDOMAIN}`,
      ].join('\n'),
    ],
    [
      'an invalid claim name',
      { storage: KubernetesSessionStorage.existingClaim({ claimName: 'Bad' }) },
      `stack/Fleet: 'storage.claimName' ("Bad") ${DNS_SUBDOMAIN}`,
    ],
    [
      'an emptyDir limit of 0',
      { storage: KubernetesSessionStorage.ephemeral({ sizeLimitMiB: 0 }) },
      `stack/Fleet: 'storage.sizeLimitMiB' (0) must be a whole number between 1 and 1048576`,
    ],
    [
      'per-instance volumes every node can mount',
      { storage: KubernetesSessionStorage.perInstanceVolume({ accessMode: 'ReadWriteMany' as 'ReadWriteOnce' }) },
      `stack/Fleet: 'storage.accessMode' ("ReadWriteMany") must be "ReadWriteOnce" or "ReadWriteOncePod"`,
    ],
    [
      'shared session state without shared storage',
      {
        policy: { affinity: { type: 'mcp-streamable-http' }, sharedSessionState: true },
        storage: KubernetesSessionStorage.ephemeral(),
      },
      `stack/Fleet: 'policy.sharedSessionState' (true) needs storage every instance mounts (storage is ephemeral): use KubernetesSessionStorage.sharedVolume() or existingClaim() with accessMode "ReadWriteMany"`,
    ],
    [
      'no Redis for many instances',
      { redis: KubernetesFleetRedis.none() },
      `stack/Fleet: 'redis' (none) leaves each agent its own in-memory store, which serves one instance: with 'policy.maxInstances' (10) use KubernetesFleetRedis.inCluster() or external()`,
    ],
    [
      'an invalid Redis URL Secret',
      { redis: KubernetesFleetRedis.external({ secretName: 'redis', key: '' }) },
      `stack/Fleet: 'redis.urlSecret.key' ("") ${SECRET_KEY}`,
    ],
    [
      'a broken in-cluster Redis',
      {
        redis: KubernetesFleetRedis.inCluster({
          image: '',
          memoryMiB: 8,
          authSecret: { secretName: 'auth', key: 'b c' },
        }),
      },
      [
        'stack/Fleet: 3 problems:',
        `  - 'redis.image' ("") must not be empty`,
        `  - 'redis.memoryMiB' (8) must be a whole number between 16 and 65536`,
        `  - 'redis.authSecret.key' ("b c") ${SECRET_KEY}`,
      ].join('\n'),
    ],
  ])('rejects %s', (_, props, message) => {
    expect(errorOf(props)).toBe(message);
  });
});

describe('KubernetesSessionFleet validation: tenants', () => {
  it('rejects tenants without tenant isolation', () => {
    expect(errorOf({ tenants: [{ tenantId: 'alice' }] })).toBe(
      `stack/Fleet: 'tenants' (["alice"]) need 'policy.isolation' "tenant" (it is "shared")`,
    );
    expect(constructionError((stack) => new KubernetesSessionFleet(stack, 'Fleet', BASE).addTenant('alice'))).toBe(
      `stack/Fleet: addTenant("alice") needs 'policy.isolation' "tenant" (it is "shared")`,
    );
  });

  it('rejects a tenant id that is no DNS label, and a tenant added twice', () => {
    const tenantFleet = (stack: TerraformStack) =>
      new KubernetesSessionFleet(stack, 'Fleet', { ...BASE, policy: TENANTS, tenants: [{ tenantId: 'alice' }] });
    expect(constructionError((stack) => tenantFleet(stack).addTenant('Alice'))).toBe(
      `stack/Fleet: 'tenantId' ("Alice") ${DNS_LABEL(24)}`,
    );
    expect(constructionError((stack) => tenantFleet(stack).addTenant('alice'))).toBe(
      `stack/Fleet: 'tenantId' ("alice") is already a tenant of this fleet`,
    );
    expect(errorOf({ policy: TENANTS, tenants: [{ tenantId: 'a'.repeat(25) }] })).toBe(
      `stack/Fleet: 'tenants[0].tenantId' ("${'a'.repeat(25)}") ${DNS_LABEL(24)}`,
    );
  });

  it('rejects storage, Redis and principals that every tenant would share', () => {
    expect(
      errorOf({
        policy: TENANTS,
        storage: KubernetesSessionStorage.existingClaim({ claimName: 'sessions' }),
        redis: KubernetesFleetRedis.external({ secretName: 'redis', key: 'url' }),
        principals: { secretName: 'principals', key: 'principals.json' },
        tenants: [{ tenantId: 'alice' }],
      }),
    ).toBe(
      [
        'stack/Fleet: 3 problems:',
        `  - 'storage' (existingClaim "sessions", ReadWriteMany) would be shared by every tenant: give tenant "alice" its own 'tenants[0].storage'`,
        `  - 'redis' (external) would be shared by every tenant, whose agents would then coordinate as one fleet: give tenant "alice" its own 'tenants[0].redis'`,
        `  - 'principals' ("principals") would let every tenant's clients into every tenant's instances: give tenant "alice" its own 'tenants[0].principals'`,
      ].join('\n'),
    );
  });

  it("checks each tenant's own settings under its prop path", () => {
    expect(
      errorOf({
        policy: { ...TENANTS, maxInstances: 4 },
        tenants: [
          { tenantId: 'alice' },
          {
            tenantId: 'bob',
            env: { '2X': 'y' },
            storage: KubernetesSessionStorage.sharedVolume({ accessMode: 'ReadWriteOnce' }),
            redis: KubernetesFleetRedis.none(),
          },
        ],
      }),
    ).toBe(
      [
        'stack/Fleet: 3 problems:',
        `  - 'tenants[1].storage.accessMode' ("ReadWriteOnce") lets one node mount the volume, so 'policy.maxInstances' (4) must be 1: use "ReadWriteMany" or KubernetesSessionStorage.perInstanceVolume()`,
        `  - 'tenants[1].redis' (none) leaves each agent its own in-memory store, which serves one instance: with 'policy.maxInstances' (4) use KubernetesFleetRedis.inCluster() or external()`,
        `  - 'tenants[1].env' ("2X") ${ENV_NAME}`,
      ].join('\n'),
    );
  });

  it('rejects a tenant whose storage cannot honour the shared policy', () => {
    expect(
      constructionError((stack) =>
        new KubernetesSessionFleet(stack, 'Fleet', { ...BASE, policy: TENANTS }).addTenant('alice', {
          storage: KubernetesSessionStorage.ephemeral(),
        }),
      ),
    ).toBe(
      `stack/Fleet: 'storage' (ephemeral) is not mounted by every instance, but 'policy.sharedSessionState' is true for every tenant (they share one policy file): give every tenant storage that is`,
    );
  });
});

describe('KubernetesSessionFleet validation: unresolved tokens', () => {
  it('skips every check whose value is only known at apply time', () => {
    const stack = new TerraformStack(Testing.app(), 'stack');
    const text = (name: string) => new TerraformVariable(stack, name, { type: 'string' }).stringValue;
    const number = (name: string) => Token.asNumber(new TerraformVariable(stack, name, { type: 'number' }).value);
    expect(
      () =>
        new KubernetesSessionFleet(stack, 'Fleet', {
          name: text('name'),
          namespace: text('namespace'),
          labels: { team: text('team') },
          policy: {
            affinity: { type: 'mcp-streamable-http' },
            maxInstances: number('max'),
            sessionsPerInstance: number('spi'),
          },
          app: {
            image: text('image'),
            port: number('port'),
            cpuRequest: text('cpu'),
            memoryRequestMiB: number('memory'),
            secretEnv: { TOKEN: { secretName: text('secret'), key: text('key') } },
          },
          storage: KubernetesSessionStorage.sharedVolume({ accessMode: 'ReadWriteOnce', sizeGiB: number('size') }),
          redis: KubernetesFleetRedis.none(),
          principalHeader: text('principal-header'),
          tenantHeader: text('tenant-header'),
          trustedProxies: KubernetesTrustedProxies.from({ cidrs: [text('cidr')] }),
          targetSessionUtilization: number('target'),
          preStopDelaySeconds: number('delay'),
        }),
    ).not.toThrow();
  });
});
