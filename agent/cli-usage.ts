/**
 * What `sessionfleet-agent --help` prints and what its exit codes mean: written once here, read by
 * the CLI and by the reference page `docs/reference/cli.md` (`npm run docs`).
 */
import { readFileSync } from 'node:fs';
import { AGENT_EXECUTABLE, AGENT_FLAGS, envName } from '../policy/agent-interface.js';
import { ADMIN_USAGE } from './admin-cli.js';

export const PROGRAM = AGENT_EXECUTABLE;

export interface CliCommand {
  readonly usage: string;
  readonly summary: string;
}

/** The subcommands, and `run` (no subcommand: run the agent). */
export const CLI_COMMANDS = {
  run: { usage: `${PROGRAM} [flags]`, summary: 'run the agent in front of one instance' },
  'check-policy': {
    usage: `${PROGRAM} check-policy <file>`,
    summary: 'validate a policy file; print it with every default filled in, or print every error',
  },
  'print-schema': { usage: `${PROGRAM} print-schema`, summary: 'print the JSON Schema of the policy file' },
  admin: {
    usage: `${PROGRAM} admin <command> [options]`,
    summary:
      "a fleet's instances, sessions, MCP 2026 tasks and open streams; ending a session, a task or a stream and draining an instance, through an agent's admin API",
  },
  help: { usage: `${PROGRAM} help [command]`, summary: 'print this help, or the help of one command' },
} as const satisfies Record<string, CliCommand>;

export type CliCommandName = keyof typeof CLI_COMMANDS;

/** Names a user types as the first argument (`run` is what no subcommand means). */
export const SUBCOMMANDS = Object.keys(CLI_COMMANDS).filter((c) => c !== 'run');

export const EXIT_CODES = [
  { code: 0, meaning: 'success; the agent drained and stopped after SIGTERM or SIGINT' },
  {
    code: 1,
    meaning:
      '`check-policy`: the policy is invalid or unreadable; `admin`: the agent refused the request; the agent: it failed while running',
  },
  {
    code: 2,
    meaning:
      'usage or configuration error: an unknown flag or command, a bad flag value, an invalid policy or principals file, a port in use; nothing was started',
  },
  { code: 3, meaning: '`admin`: the agent could not be reached' },
  { code: 4, meaning: '`admin`: not authorised (a missing or wrong `--admin-token`)' },
  {
    code: 5,
    meaning:
      '`admin`: partly done (a `kill-task`, `kill-stream` or `streams` an instance did not answer, or a task that could not be cancelled)',
  },
] as const;

function flagLines(): string[] {
  const lines: string[] = [];
  for (const [name, flag] of Object.entries(AGENT_FLAGS)) {
    lines.push(`  --${name.padEnd(20)} ${envName(name).padEnd(34)} ${flag.description}`);
  }
  return lines;
}

function exitCodeLines(): string[] {
  return ['exit codes:', ...EXIT_CODES.map((e) => `  ${e.code}  ${e.meaning.replace(/`/g, '')}`)];
}

/** `sessionfleet-agent --help`. */
export function usage(): string {
  const width = Math.max(...Object.values(CLI_COMMANDS).map((c) => c.usage.length));
  return [
    ...Object.values(CLI_COMMANDS).map(
      (c, i) => `${i === 0 ? 'usage: ' : '       '}${c.usage.padEnd(width)}  ${c.summary}`,
    ),
    `       ${PROGRAM} --version`,
    '',
    'flags (each also from the environment variable shown; the command line wins):',
    ...flagLines(),
    `  --${'help'.padEnd(20)} ${''.padEnd(34)} print this help`,
    `  --${'version'.padEnd(20)} ${''.padEnd(34)} print the version`,
    '',
    ...exitCodeLines(),
  ].join('\n');
}

/** `sessionfleet-agent <command> --help`. */
export function commandUsage(command: CliCommandName): string {
  if (command === 'run' || command === 'help') return usage();
  if (command === 'admin') return ADMIN_USAGE;
  const c = CLI_COMMANDS[command];
  const extra =
    command === 'check-policy'
      ? ['', 'Warnings go to stderr; the normalized policy (JSON) to stdout.', '', ...exitCodeLines()]
      : [];
  return [`usage: ${c.usage}`, '', c.summary, ...extra].join('\n');
}

/** The package's version, from the package.json above this file (source or dist/). */
export function packageVersion(): string {
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'sessionfleet' && pkg.version) return pkg.version;
    } catch {
      // not here; try one level up
    }
  }
  return 'unknown';
}
