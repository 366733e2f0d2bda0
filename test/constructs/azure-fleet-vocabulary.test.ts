/**
 * One vocabulary across targets (docs/adr/0100): the Azure fleets take `app` and `agent` with the
 * Kubernetes construct's names, memory in whole MiB, and refuse the flat props of 0.x, naming the
 * new path. Both fleets share the props, so each case runs against both.
 */
import { Testing } from 'cdktf';
import type { Construct } from 'constructs';
import { describe, expect, it } from 'vitest';
import {
  AzureContainerAppsSessionFleet,
  type AzureContainerAppsSessionFleetProps,
  AzureContainerInstancesSessionFleet,
  type AzureContainerInstancesSessionFleetProps,
} from '../../constructs/index.js';

interface Container {
  name: string;
  image: string;
  cpu: number;
  memory: number | string;
  commands?: string[];
  command?: string[];
  args?: string[];
  environment_variables?: Record<string, string>;
  env?: { name: string; value?: string; secret_name?: string }[];
}
interface Stack {
  resource: Record<string, Record<string, Record<string, unknown>>>;
}

const POLICY = { affinity: { type: 'mcp-streamable-http' }, maxInstances: 1 } as const;
const APP = { image: 'example.azurecr.io/mcp-server:1.4.0', port: 3000 };

type AciProps = AzureContainerInstancesSessionFleetProps;
type AcaProps = AzureContainerAppsSessionFleetProps;

function aci(props: Partial<AciProps>): { containers: Container[]; fleet: AzureContainerInstancesSessionFleet } {
  let fleet: AzureContainerInstancesSessionFleet | undefined;
  const stack = JSON.parse(
    Testing.synthScope((scope: Construct) => {
      fleet = new AzureContainerInstancesSessionFleet(scope, 'Fleet', {
        policy: POLICY,
        app: APP,
        location: 'westeurope',
        ...props,
      });
    }),
  ) as Stack;
  const group = Object.values(stack.resource.azurerm_container_group!)[0] as { container: Container[] };
  return { containers: group.container, fleet: fleet! };
}

function aca(props: Partial<AcaProps>): { containers: Container[]; fleet: AzureContainerAppsSessionFleet } {
  let fleet: AzureContainerAppsSessionFleet | undefined;
  const stack = JSON.parse(
    Testing.synthScope((scope: Construct) => {
      fleet = new AzureContainerAppsSessionFleet(scope, 'Fleet', {
        policy: POLICY,
        app: APP,
        location: 'westeurope',
        ...props,
      });
    }),
  ) as Stack;
  const app = Object.values(stack.resource.azurerm_container_app!)[0] as { template: { container: Container[] } };
  return { containers: app.template.container, fleet: fleet! };
}

function errorOf(build: () => unknown): string {
  try {
    build();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected the fleet to be rejected');
}

const FLEETS = [
  { name: 'AzureContainerInstancesSessionFleet', synth: aci },
  { name: 'AzureContainerAppsSessionFleet', synth: aca },
] as const;

describe.each(FLEETS)('$name: app and agent', ({ synth }) => {
  it('resolves the defaults under the new names: 1 vCPU and 2048 MiB per vCPU for the app, 0.5 and 1024 for the agent', () => {
    const { fleet } = synth({});
    expect(fleet.app).toMatchObject({ ...APP, cpu: 1, memoryMiB: 2048, env: {}, secretEnv: {} });
    expect(fleet.agent).toMatchObject({ cpu: 0.5, memoryMiB: 1024, logLevel: 'info' });
  });

  it('allocates memoryMiB as GiB, the unit the provider takes', () => {
    const { containers } = synth({ app: { ...APP, cpu: 1.25, memoryMiB: 2560 }, agent: { cpu: 0.5, memoryMiB: 1024 } });
    const [app, agent] = containers;
    expect([app!.cpu, String(app!.memory).replace('Gi', '')]).toEqual([1.25, '2.5']);
    expect([agent!.cpu, String(agent!.memory).replace('Gi', '')]).toEqual([0.5, '1']);
  });

  it("hands the agent its log level only when one is given, as the Kubernetes fleet's agents get it", () => {
    const quiet = synth({}).containers[1]!;
    expect(JSON.stringify(quiet)).not.toContain('SESSIONFLEET_LOG_LEVEL');
    const agent = synth({ agent: { logLevel: 'debug' } }).containers[1]!;
    const env = agent.environment_variables ?? Object.fromEntries((agent.env ?? []).map((e) => [e.name, e.value]));
    expect(env.SESSIONFLEET_LOG_LEVEL).toBe('debug');
  });

  it('names the new prop path, the value and the rule in every message', () => {
    expect(errorOf(() => synth({ app: { ...APP, memoryMiB: 1000.5 } }))).toBe(
      "stack/Fleet: 'app.memoryMiB' (1000.5) must be a whole number of MiB above 0",
    );
    expect(errorOf(() => synth({ agent: { memoryMiB: 0 } }))).toBe(
      "stack/Fleet: 'agent.memoryMiB' (0) must be a whole number of MiB above 0",
    );
    expect(errorOf(() => synth({ agent: { cpu: -1 } }))).toBe(
      "stack/Fleet: 'agent.cpu' (-1) must be a number of vCPUs above 0",
    );
    expect(errorOf(() => synth({ agent: { image: ' ' } }))).toBe(`stack/Fleet: 'agent.image' (" ") must not be empty`);
    expect(errorOf(() => synth({ agent: { logLevel: 'loud' as 'info' } }))).toBe(
      `stack/Fleet: 'agent.logLevel' ("loud") must be one of fatal, error, warn, info, debug, trace, silent`,
    );
    expect(errorOf(() => synth({ app: { ...APP, env: { '2FA': 'x' } } }))).toBe(
      `stack/Fleet: 'app.env' has the variable name "2FA": names must be letters, digits and underscores, not starting with a digit`,
    );
  });

  it('refuses the flat props of 0.x by name, pointing at the new path, for callers without a type check', () => {
    const old = {
      image: 'x',
      appPort: 3000,
      environment: {},
      cpuCores: 1,
      memoryGiB: 2,
      agentImage: 'y',
    } as unknown as Partial<AciProps & AcaProps>;
    expect(errorOf(() => synth({ ...old, app: undefined } as Partial<AciProps & AcaProps>))).toBe(
      [
        'stack/Fleet: 7 problems:',
        "  - 'image' is no longer a prop: use 'app.image' (docs/adr/0100-construct-vocabulary.md)",
        "  - 'appPort' is no longer a prop: use 'app.port' (docs/adr/0100-construct-vocabulary.md)",
        "  - 'environment' is no longer a prop: use 'app.env' (docs/adr/0100-construct-vocabulary.md)",
        "  - 'cpuCores' is no longer a prop: use 'app.cpu' (docs/adr/0100-construct-vocabulary.md)",
        "  - 'memoryGiB' is no longer a prop: use 'app.memoryMiB' (whole MiB: GiB × 1024) (docs/adr/0100-construct-vocabulary.md)",
        "  - 'agentImage' is no longer a prop: use 'agent.image' (docs/adr/0100-construct-vocabulary.md)",
        "  - 'app' is required: the app container ({ image, port, ... })",
      ].join('\n'),
    );
  });
});

describe('app.command and app.args', () => {
  it('joins them into one command line on Container Instances, which has no separate arguments', () => {
    const { containers } = aci({ app: { ...APP, command: ['node'], args: ['server.js'] }, drainWrapper: false });
    expect(containers[0]!.commands).toEqual(['node', 'server.js']);
  });

  it('refuses app.args without app.command on Container Instances, where a command line replaces the entrypoint', () => {
    expect(errorOf(() => aci({ app: { ...APP, args: ['--port', '3000'] } }))).toBe(
      "stack/Fleet: 'app.args' needs 'app.command' on Azure Container Instances: a container group's command line replaces the image's entrypoint and command",
    );
  });

  it('keeps them apart on Container Apps, also without a command (the image entrypoint gets the args)', () => {
    const both = aca({ app: { ...APP, command: ['node'], args: ['server.js'] }, drainWrapper: false }).containers[0]!;
    expect([both.command, both.args]).toEqual([['node'], ['server.js']]);
    const argsOnly = aca({ app: { ...APP, args: ['--port', '3000'] } }).containers[0]!;
    expect([argsOnly.command, argsOnly.args]).toEqual([undefined, ['--port', '3000']]);
  });

  it('hands the whole command line to the drain wrapper, which starts the app itself', () => {
    for (const synth of [aci, aca]) {
      const app = synth({ app: { ...APP, command: ['node'], args: ['server.js'] } }).containers[0]!;
      const line = app.commands ?? app.command!;
      expect(line.slice(0, 2)).toEqual(['/bin/sh', '-c']);
      expect(line.slice(3)).toEqual(['node', 'server.js']);
      expect(app.args).toBeUndefined();
    }
  });
});

describe('the old names are type errors', () => {
  it('does not compile with a flat prop (checked by npm run typecheck)', () => {
    const props = (): AciProps => ({
      policy: POLICY,
      app: APP,
      location: 'westeurope',
      // @ts-expect-error `appPort` was renamed to `app.port` (docs/adr/0100)
      appPort: 3000,
    });
    const agent = (): AcaProps => ({
      policy: POLICY,
      app: APP,
      location: 'westeurope',
      // @ts-expect-error `agentMemoryGiB` was renamed to `agent.memoryMiB` (docs/adr/0100)
      agentMemoryGiB: 1,
    });
    expect(typeof props).toBe('function');
    expect(typeof agent).toBe('function');
  });
});
