/**
 * A Copilot fleet for end-to-end tests: one real Copilot CLI per member, each with an agent process
 * in front of it that is a member of one fleet in the run's Redis (its own fleet name, so tests
 * never see each other's keys). Started together, ready once every agent sees every member alive,
 * and stopped together with the SDK clients the test opened through it.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CopilotClient, RuntimeConnection } from '@github/copilot-sdk';
import type { PrincipalEntry } from '../../../agent/core/principals.js';
import { type CopilotAgent, startCopilotAgent } from '../../helpers/copilot-agent.js';
import { type CopilotCli, startCopilotCli } from '../../helpers/copilot-cli.js';
import { eventually, openRawClient } from '../../helpers/copilot-rpc.js';
import { type FleetAdmin, fleetAdmin, memberArgs, memberPorts, uniqueFleet } from './helpers.js';

export interface CopilotFleet<Id extends string> {
  readonly fleet: string;
  readonly clis: Record<Id, CopilotCli>;
  readonly agents: Record<Id, CopilotAgent>;
  /** An SDK client connected through `agent` with `token`, started; stopped with the fleet. */
  sdk(agent: Id, token: string): Promise<CopilotClient>;
  /** The fleet admin API of the agents (see `fleetAdmin`). */
  admin: FleetAdmin<Id>['admin'];
  owners: FleetAdmin<Id>['owners'];
  /** The ids of the sessions an agent holds itself (its local table, not the fleet's), sorted. */
  heldBy(agent: Id): Promise<string[]>;
  /** Whether a CLI has the session loaded, asked straight on the CLI. */
  loadedOn(cli: Id, sessionId: string): Promise<boolean>;
  /** Stops the clients, the agents and the CLIs, and removes the CLIs' homes. */
  stop(): Promise<void>;
}

export async function startCopilotFleet<Id extends string>(options: {
  ids: readonly Id[];
  redisUrl: string;
  policy: Record<string, unknown>;
  principals: Record<string, PrincipalEntry>;
  adminToken: string;
  /**
   * The fleet's shared volume. Every CLI's `~/.copilot/session-state` is a link to it — or, with
   * `stageState`, the CLI's own directory, and the agents stage state between the two
   * (`--session-state-dir`, `--app-state-dir`: ADR 0019), as the constructs deploy a Copilot fleet.
   */
  sharedState?: string;
  stageState?: boolean;
  /** Flags every agent gets after the member flags (e.g. `--tenant`). */
  extraArgs?: readonly string[];
}): Promise<CopilotFleet<Id>> {
  const { ids, redisUrl, adminToken } = options;
  const fleet = uniqueFleet();
  const homes: string[] = [];
  const clis = {} as Record<Id, CopilotCli>;
  const agents = {} as Record<Id, CopilotAgent>;
  const clients: CopilotClient[] = [];
  const { admin, owners, instances } = fleetAdmin<Id>((agent) => agents[agent].adminUrl, adminToken);
  const stop = async () => {
    await Promise.all(clients.splice(0).map((c) => c.forceStop().catch(() => {})));
    await Promise.all(Object.values<CopilotAgent>(agents).map((a) => a.dispose()));
    await Promise.all(Object.values<CopilotCli>(clis).map((c) => c.stop('SIGKILL')));
    for (const dir of homes.splice(0)) rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(
      ids.map(async (id) => {
        const home = mkdtempSync(join(tmpdir(), `sessionfleet-copilot-${id}-`));
        homes.push(home);
        if (options.sharedState && !options.stageState) {
          mkdirSync(join(home, '.copilot'), { recursive: true });
          symlinkSync(options.sharedState, join(home, '.copilot', 'session-state'));
        }
        clis[id] = await startCopilotCli({ home });
      }),
    );
    // The client ports are fixed up front (peers must know them: --advertise), chosen once the
    // CLIs hold theirs and distinct from each other.
    const portOf = await memberPorts(ids);
    await Promise.all(
      ids.map(async (id) => {
        agents[id] = await startCopilotAgent({
          policy: options.policy,
          upstreamPort: clis[id].port,
          upstreamToken: clis[id].token,
          principals: options.principals,
          extraArgs: [
            ...memberArgs({ id, port: portOf[id], redisUrl, fleet, adminToken }),
            ...(options.sharedState && options.stageState
              ? ['--session-state-dir', options.sharedState, '--app-state-dir', clis[id].sessionStateDir]
              : []),
            ...(options.extraArgs ?? []),
          ],
        });
      }),
    );
    // Every agent registered (placement only counts live instances).
    await eventually(
      async () => (await instances(ids[0]!)).filter((i) => i.alive).length === ids.length,
      10_000,
      `${ids.length} live`,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    fleet,
    clis,
    agents,
    async sdk(agent, token) {
      const client = new CopilotClient({
        connection: RuntimeConnection.forUri(agents[agent].address, { connectionToken: token }),
      });
      clients.push(client);
      await client.start();
      return client;
    },
    admin,
    owners,
    async heldBy(agent) {
      const sessions = (await admin(agent, '/admin/sessions')).body.sessions as Array<{ id: string }>;
      return sessions.map((s) => s.id).sort();
    },
    async loadedOn(cli, sessionId) {
      const direct = await openRawClient(clis[cli].port);
      try {
        await direct.call('connect', { token: clis[cli].token });
        const reply = await direct.call('session.getMessages', { sessionId });
        if (reply.error && /Session not found/.test(reply.error.message)) return false;
        if (reply.error) throw new Error(reply.error.message);
        return true;
      } finally {
        await direct.close();
      }
    },
    stop,
  };
}
