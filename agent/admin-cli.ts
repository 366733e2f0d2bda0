/**
 * `sessionfleet-agent admin …`: the operator's view of a fleet through one agent's admin API
 * (`/admin/fleet/...`, behind `--admin-token`). Any agent of the fleet answers for all of it.
 *
 *   admin fleet                 instances, load, draining, leases, and this agent's readiness
 *   admin sessions [filters]    the fleet's sessions (--principal, --tenant, --instance, --limit)
 *   admin session <id>          one session
 *   admin kill <id>             ends a session properly on its owner
 *   admin drain <instance>      the instance takes no new sessions (its sessions go on)
 *   admin tasks [filters]       the fleet's live MCP 2026 tasks (--principal, --tenant, --limit)
 *   admin kill-task <id> | --principal P [--tenant T]     cancels tasks where they live
 *   admin streams [filters]     the fleet's open listen/GET streams (--principal, --tenant)
 *   admin kill-stream <id> | --principal P [--tenant T]   closes streams where they are open
 *
 * Tables for people, `--json` for scripts. Exit codes: 0 done; 1 the agent refused (not found,
 * already finished, bad filter); 2 usage; 3 the agent could not be reached; 4 not authorised;
 * 5 partly done (an instance did not answer, or a task could not be cancelled).
 */
import { AGENT_PATHS, DEFAULT_ADMIN_LISTEN } from '../policy/agent-interface.js';
import { parseCommandLine, UsageError, unknownCommandMessage } from './cli-args.js';
import type { DrainResult, FleetInstanceSummary, FleetSessionInfo } from './fleet/types.js';

export interface AdminIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export const ADMIN_EXIT = { ok: 0, refused: 1, usage: 2, unreachable: 3, unauthorised: 4, partial: 5 } as const;

const COMMANDS = [
  'fleet',
  'sessions',
  'session',
  'kill',
  'drain',
  'tasks',
  'kill-task',
  'streams',
  'kill-stream',
] as const;
type Command = (typeof COMMANDS)[number];

export const ADMIN_USAGE = `usage: sessionfleet-agent admin <command> [options]

commands:
  fleet                 the fleet's instances: load, draining, lease; and this agent's readiness
  sessions              the fleet's sessions  [--principal P] [--tenant T] [--instance I] [--limit N]
  session <id>          one session's details
  kill <id>             end a session properly on the instance that holds it
  drain <instance>      stop placing new sessions on an instance; its sessions go on (see 'admin fleet')
  tasks                 the fleet's live MCP 2026 tasks  [--principal P] [--tenant T] [--limit N]
  kill-task <id>        cancel a task on the instance that holds it
  kill-task --principal P [--tenant T]     cancel all of a principal's live tasks, fleet-wide
  streams               the fleet's open listen and GET streams  [--principal P] [--tenant T]
  kill-stream <id>      close a stream on the instance where it is open (its client sees it end)
  kill-stream --principal P [--tenant T]   close all of a principal's streams, fleet-wide

options:
  --admin-url <url>     the agent's admin port (env SESSIONFLEET_ADMIN_URL; default http://${DEFAULT_ADMIN_LISTEN})
  --admin-token <t>     its --admin-token (env SESSIONFLEET_ADMIN_TOKEN)
  --json                print the agent's JSON answer instead of a table
  --help                this text

exit codes: 0 done, 1 refused by the agent (not found, already finished), 2 usage, 3 agent unreachable,
            4 not authorised, 5 partly done (an instance did not answer, a task could not be cancelled)`;

class AdminFailure extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

interface Target {
  base: string;
  token: string | undefined;
}

async function call(target: Target, method: 'GET' | 'DELETE' | 'POST', path: string): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(new URL(path, target.base), {
      method,
      headers: target.token === undefined ? {} : { authorization: `Bearer ${target.token}` },
      signal: AbortSignal.timeout(10_000),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
    throw new AdminFailure(`cannot reach the agent's admin API at ${target.base} (${cause})`, ADMIN_EXIT.unreachable);
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (response.ok && body !== undefined) return body;
  const error = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
  const what = error ? `${error.code}: ${error.message}` : `HTTP ${response.status}`;
  if (response.status === 401 || error?.code === 'UNAUTHENTICATED' || error?.code === 'ADMIN_DISABLED')
    throw new AdminFailure(
      `not authorised by ${target.base} (${what}); give the agent's admin token with --admin-token or SESSIONFLEET_ADMIN_TOKEN`,
      ADMIN_EXIT.unauthorised,
    );
  throw new AdminFailure(`the agent refused: ${what}`, ADMIN_EXIT.refused);
}

/** Plain columns, padded; the header underlined so the output reads in a terminal and a log. */
export function table(columns: readonly string[], rows: ReadonlyArray<ReadonlyArray<string>>): string {
  const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(columns), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const text = (value: unknown) => (value === null || value === undefined ? '-' : String(value));

/** The admin API's answers are the fleet layer's own types, as JSON. */
type Instance = FleetInstanceSummary;
type SessionInfo = FleetSessionInfo;

async function run(
  command: Command,
  args: readonly string[],
  filters: Record<string, string>,
  target: Target,
  json: boolean,
  io: AdminIo,
): Promise<void> {
  const print = (value: unknown, render: () => string) =>
    io.stdout(`${json ? JSON.stringify(value, null, 2) : render()}\n`);
  switch (command) {
    case 'tasks':
    case 'kill-task':
    case 'streams':
    case 'kill-stream':
      return runKillSwitch(command, args, filters, target, print);
    case 'fleet': {
      const answer = (await call(target, 'GET', `${AGENT_PATHS.admin}/fleet/instances`)) as {
        instanceId: string;
        instances: Instance[];
      };
      const ready = await fetch(new URL(AGENT_PATHS.ready, target.base)).then(
        async (r) => (await r.json()) as { status: string; reasons: string[] },
        () => ({ status: 'unknown', reasons: [] as string[] }),
      );
      print({ ...answer, ready }, () => {
        const rows = answer.instances.map((i) => [
          `${i.id}${i.self ? ' *' : ''}`,
          i.alive ? 'alive' : 'gone',
          `${i.used}/${i.capacity}`,
          i.draining ? 'yes' : 'no',
          text(i.inFlight),
          i.leaseExpiresInMs === null ? '-' : `${(i.leaseExpiresInMs / 1000).toFixed(1)}s`,
          i.advertise,
        ]);
        const used = answer.instances.filter((i) => i.alive).reduce((n, i) => n + i.used, 0);
        const capacity = answer.instances.filter((i) => i.alive).reduce((n, i) => n + i.capacity, 0);
        return [
          table(['INSTANCE', 'STATE', 'SESSIONS', 'DRAINING', 'IN FLIGHT', 'LEASE', 'ADVERTISE'], rows),
          '',
          `${answer.instances.filter((i) => i.alive).length} live instances, ${used}/${capacity} sessions; * = ${answer.instanceId}, which answered: ${ready.status}${ready.reasons.length ? ` (${ready.reasons.join('; ')})` : ''}`,
        ].join('\n');
      });
      return;
    }
    case 'sessions': {
      if (args.length > 0) throw new AdminFailure('admin sessions takes no arguments, only filters', ADMIN_EXIT.usage);
      const query = new URLSearchParams(filters);
      const answer = (await call(
        target,
        'GET',
        `${AGENT_PATHS.admin}/fleet/sessions${query.size ? `?${query}` : ''}`,
      )) as { count: number; truncated: boolean; sessions: SessionInfo[] };
      print(answer, () =>
        [
          table(
            ['SESSION', 'OWNER', 'PRINCIPAL', 'TENANT', 'AGE', 'IDLE', 'EXPIRES'],
            answer.sessions.map((s) => [
              s.id,
              `${text(s.owner)}${s.owner !== null && !s.ownerAlive ? ' (gone)' : ''}`,
              text(s.principal),
              text(s.tenant),
              `${s.ageSeconds}s`,
              s.idleSeconds === null ? '-' : `${s.idleSeconds}s`,
              s.expiresAt,
            ]),
          ),
          '',
          `${answer.count} session${answer.count === 1 ? '' : 's'}${answer.truncated ? ' (truncated: narrow the filter or raise --limit)' : ''}`,
        ].join('\n'),
      );
      return;
    }
    case 'drain': {
      const [instance, ...extra] = args;
      if (instance === undefined || extra.length > 0)
        throw new AdminFailure('admin drain takes one instance id (see admin fleet)', ADMIN_EXIT.usage);
      const answer = (await call(
        target,
        'POST',
        `${AGENT_PATHS.admin}/fleet/instances/${encodeURIComponent(instance)}/drain`,
      )) as DrainResult & { draining: boolean };
      print(
        answer,
        () =>
          `draining ${instance}: it takes no new sessions; its sessions go on until it stops${answer.via === 'peer' ? ' (confirmed by the instance)' : ''}`,
      );
      return;
    }
    case 'session':
    case 'kill': {
      const [id, ...extra] = args;
      if (id === undefined || extra.length > 0)
        throw new AdminFailure(`admin ${command} takes one session id`, ADMIN_EXIT.usage);
      const path = `${AGENT_PATHS.admin}/fleet/sessions/${encodeURIComponent(id)}`;
      if (command === 'session') {
        const answer = (await call(target, 'GET', path)) as Record<string, unknown>;
        print(answer, () =>
          table(
            ['FIELD', 'VALUE'],
            Object.entries(answer).map(([k, v]) => [k, text(v)]),
          ),
        );
      } else {
        const answer = (await call(target, 'DELETE', path)) as {
          terminated: boolean;
          via: string;
          owner: string | null;
        };
        print(
          answer,
          () =>
            `ended ${id} (${answer.via === 'registry' ? 'its owner was gone: record removed' : `on ${text(answer.owner)}`})`,
        );
      }
      return;
    }
  }
}

interface TaskRow {
  kind: string;
  id: string;
  owner: string;
  principal: string | null;
  tenant: string | null;
  expiresAt: string;
}

interface StreamRow {
  id: string;
  kind: string;
  instanceId: string;
  principal: string | null;
  tenant: string | null;
  openedAt: string;
  idleSeconds: number;
}

const streamTable = (streams: readonly StreamRow[]) =>
  table(
    ['STREAM', 'KIND', 'INSTANCE', 'PRINCIPAL', 'TENANT', 'OPENED', 'IDLE'],
    streams.map((s) => [
      s.id,
      s.kind,
      s.instanceId,
      text(s.principal),
      text(s.tenant),
      s.openedAt,
      `${s.idleSeconds}s`,
    ]),
  );

const silentNote = (unanswered: readonly string[]) =>
  unanswered.length > 0 ? `\nnot answered (try again): ${unanswered.join(', ')}` : '';

/** The MCP 2026 task and stream commands (ADR 0025). */
async function runKillSwitch(
  command: 'tasks' | 'kill-task' | 'streams' | 'kill-stream',
  args: readonly string[],
  filters: Record<string, string>,
  target: Target,
  print: (value: unknown, render: () => string) => void,
): Promise<void> {
  const [id, ...extra] = args;
  const listing = command === 'tasks' || command === 'streams';
  if (extra.length > 0 || (listing && id !== undefined))
    throw new AdminFailure(
      `admin ${command} takes ${listing ? 'no arguments, only filters' : 'one id'}`,
      ADMIN_EXIT.usage,
    );
  if (!listing && (id === undefined) === (filters.principal === undefined))
    throw new AdminFailure(`admin ${command} takes one id, or --principal (not both)`, ADMIN_EXIT.usage);
  if (!listing && id !== undefined && filters.tenant !== undefined)
    throw new AdminFailure(`--tenant goes with --principal, not with an id`, ADMIN_EXIT.usage);
  const base = `${AGENT_PATHS.admin}/fleet/${command.endsWith('task') || command === 'tasks' ? 'tasks' : 'streams'}`;
  const query = new URLSearchParams(filters);
  const path = id !== undefined ? `${base}/${encodeURIComponent(id)}` : `${base}${query.size ? `?${query}` : ''}`;
  const answer = (await call(target, listing ? 'GET' : 'DELETE', path)) as Record<string, unknown>;
  switch (command) {
    case 'tasks': {
      const { tasks, count, truncated } = answer as { tasks: TaskRow[]; count: number; truncated: boolean };
      print(answer, () =>
        [
          table(
            ['TASK', 'KIND', 'OWNER', 'PRINCIPAL', 'TENANT', 'EXPIRES'],
            tasks.map((t) => [t.id, t.kind, t.owner, text(t.principal), text(t.tenant), t.expiresAt]),
          ),
          '',
          `${count} live${truncated ? ' (truncated: narrow the filter or raise --limit)' : ''}`,
        ].join('\n'),
      );
      return;
    }
    case 'streams': {
      const { streams, unanswered } = answer as { streams: StreamRow[]; unanswered: string[] };
      print(
        answer,
        () =>
          [streamTable(streams), '', `${streams.length} open stream${streams.length === 1 ? '' : 's'}`].join('\n') +
          silentNote(unanswered),
      );
      if (unanswered.length > 0) throw new AdminFailure(`not answered: ${unanswered.join(', ')}`, ADMIN_EXIT.partial);
      return;
    }
    case 'kill-stream': {
      const { closed, unanswered } = answer as { closed: StreamRow[]; unanswered: string[] };
      print(
        answer,
        () =>
          `closed ${closed.length} stream${closed.length === 1 ? '' : 's'}${closed.length ? `: ${closed.map((s) => `${s.id} (on ${s.instanceId})`).join(', ')}` : ''}${silentNote(unanswered)}`,
      );
      if (unanswered.length > 0) throw new AdminFailure(`not answered: ${unanswered.join(', ')}`, ADMIN_EXIT.partial);
      return;
    }
    case 'kill-task': {
      if (id !== undefined) {
        const { owner, status } = answer as { owner: string; status: string | null };
        print(answer, () => `cancelled ${id} on ${owner}${status ? ` (now ${status})` : ''}`);
        return;
      }
      const result = answer as {
        cancelled: string[];
        finished: string[];
        unknown: string[];
        failed: Array<{ id: string; owner: string; reason: string }>;
        unanswered: Array<{ id: string; owner: string }>;
      };
      print(answer, () =>
        [
          `cancelled ${result.cancelled.length}: ${result.cancelled.join(', ') || '-'}`,
          `already finished ${result.finished.length}, unknown to their server ${result.unknown.length}`,
          ...result.failed.map((f) => `failed ${f.id} on ${f.owner}: ${f.reason}`),
          ...result.unanswered.map((u) => `not answered: ${u.id} (on ${u.owner})`),
        ].join('\n'),
      );
      if (result.failed.length > 0 || result.unanswered.length > 0)
        throw new AdminFailure('some tasks were not cancelled', ADMIN_EXIT.partial);
      return;
    }
  }
}

const OPTIONS = {
  'admin-url': { type: 'string' },
  'admin-token': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  // Filters of `admin sessions`.
  principal: { type: 'string' },
  tenant: { type: 'string' },
  instance: { type: 'string' },
  limit: { type: 'string' },
} as const;
const FILTERS = ['principal', 'tenant', 'instance', 'limit'] as const;
/** The filters each command takes. */
const FILTERS_OF: Partial<Record<Command, readonly (typeof FILTERS)[number][]>> = {
  sessions: FILTERS,
  tasks: ['principal', 'tenant', 'limit'],
  streams: ['principal', 'tenant'],
  'kill-task': ['principal', 'tenant'],
  'kill-stream': ['principal', 'tenant'],
};

/** Runs `admin …` (argv after `admin`); resolves to the exit code. */
export async function adminCommand(
  argv: readonly string[],
  io: AdminIo,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const usage = (message: string) => {
    io.stderr(`sessionfleet-agent admin: ${message}; see 'sessionfleet-agent admin --help'\n`);
    return ADMIN_EXIT.usage;
  };
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    // The agent's own parser: an unknown option gets a "did you mean" among these options.
    parsed = parseCommandLine(argv, OPTIONS, { positionals: Number.POSITIVE_INFINITY });
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    return usage(error.message);
  }
  const values = parsed.values as {
    [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string;
  };
  const positionals = parsed.positionals;
  if (values.help === true) {
    io.stdout(`${ADMIN_USAGE}\n`);
    return ADMIN_EXIT.ok;
  }
  const [command, ...args] = positionals;
  if (command === undefined) return usage(`a command is required (${COMMANDS.join(', ')})`);
  if (!(COMMANDS as readonly string[]).includes(command)) return usage(unknownCommandMessage(command, COMMANDS));
  const filters: Record<string, string> = {};
  for (const name of FILTERS) {
    const value = values[name];
    if (value === undefined) continue;
    if (!FILTERS_OF[command as Command]?.includes(name)) {
      const takers = Object.entries(FILTERS_OF)
        .filter(([, names]) => names.includes(name))
        .map(([c]) => `'admin ${c}'`);
      return usage(`--${name} is an option of ${takers.join(', ')}, not of 'admin ${command}'`);
    }
    filters[name] = value;
  }
  // An empty variable is an unset one, as shells and Kubernetes env blocks leave them.
  const fromEnv = (name: string) => (env[name] === '' ? undefined : env[name]);
  const url = values['admin-url'] ?? fromEnv('SESSIONFLEET_ADMIN_URL') ?? `http://${DEFAULT_ADMIN_LISTEN}`;
  const token = values['admin-token'] ?? fromEnv('SESSIONFLEET_ADMIN_TOKEN');
  let base: string;
  try {
    base = new URL(url).toString();
  } catch {
    return usage(`--admin-url (${JSON.stringify(url)}) must be a URL such as http://127.0.0.1:9090`);
  }
  try {
    await run(command as Command, args, filters, { base, token }, values.json === true, io);
    return ADMIN_EXIT.ok;
  } catch (error) {
    if (!(error instanceof AdminFailure)) throw error;
    io.stderr(`sessionfleet-agent admin: ${error.message}\n`);
    return error.exitCode;
  }
}
