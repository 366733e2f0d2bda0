/**
 * `sessionfleet-agent`: the agent's entry point. Subcommands `check-policy`, `print-schema` and
 * `admin` (an agent's admin API, agent/admin-cli.ts) run no server; the default runs the agent (`server.ts`).
 */
import { readFile } from 'node:fs/promises';
import { hostname, networkInterfaces } from 'node:os';
import { pathToFileURL } from 'node:url';
import { policyJsonSchema, validatePolicyText } from '../policy/index.js';
import { adminCommand } from './admin-cli.js';
import { parseCommandLine, UsageError, unknownCommandMessage } from './cli-args.js';
import {
  CLI_COMMANDS,
  type CliCommandName,
  commandUsage,
  PROGRAM,
  packageVersion,
  SUBCOMMANDS,
  usage,
} from './cli-usage.js';
import { ConfigError, parseAgentConfig } from './config.js';
import { tuneV8 } from './core/v8-tuning.js';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/** `check-policy <file>`: exit 0 and the normalized policy, or exit 1 and every error. */
export async function checkPolicy(file: string | undefined, io: CliIo = processIo): Promise<number> {
  if (!file) {
    io.stderr('usage: sessionfleet-agent check-policy <file>\n');
    return 2;
  }
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    io.stderr(`${file}: cannot read the policy file (${code ?? String(error)})\n`);
    return 1;
  }
  const result = validatePolicyText(text);
  for (const warning of result.warnings) io.stderr(`${file}: warning: ${warning.message}\n`);
  if (!result.ok) {
    io.stderr(`${file}: ${result.errors.length} error${result.errors.length === 1 ? '' : 's'}:\n`);
    for (const error of result.errors) io.stderr(`  - ${error.message}\n`);
    return 1;
  }
  io.stdout(`${JSON.stringify(result.policy, null, 2)}\n`);
  return 0;
}

/** `--help`/`-h` or `--version` anywhere before `--`: answered before anything else is checked. */
function wants(argv: readonly string[], ...flags: string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => flags.includes(a));
}

export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [first, ...rest] = argv;
  const fail = (message: string, help = PROGRAM): number => {
    io.stderr(`${PROGRAM}: ${message}; see '${help} --help'\n`);
    return 2;
  };
  if (wants(argv, '--version', '-V')) {
    io.stdout(`${packageVersion()}\n`);
    return 0;
  }
  const command = first !== undefined && !first.startsWith('-') ? first : undefined;
  if (command !== undefined && !SUBCOMMANDS.includes(command)) {
    return fail(unknownCommandMessage(command, SUBCOMMANDS));
  }
  // The operator CLI parses its own flags and answers its own --help (agent/admin-cli.ts).
  if (command === 'admin') return adminCommand(rest, io);
  if (command === 'help') {
    const topic = rest[0];
    if (topic === undefined) io.stdout(`${usage()}\n`);
    else if (topic in CLI_COMMANDS) io.stdout(`${commandUsage(topic as CliCommandName)}\n`);
    else return fail(unknownCommandMessage(topic, SUBCOMMANDS));
    return 0;
  }
  if (wants(argv, '--help', '-h')) {
    io.stdout(`${command ? commandUsage(command as CliCommandName) : usage()}\n`);
    return 0;
  }
  if (command === 'check-policy' || command === 'print-schema') {
    let positionals: readonly string[];
    try {
      ({ positionals } = parseCommandLine(rest, {}, { positionals: command === 'check-policy' ? 1 : 0 }));
    } catch (error) {
      if (error instanceof UsageError) return fail(`${command}: ${error.message}`, `${PROGRAM} ${command}`);
      throw error;
    }
    if (command === 'check-policy') return checkPolicy(positionals[0], io);
    io.stdout(`${JSON.stringify(policyJsonSchema(), null, 2)}\n`);
    return 0;
  }
  let config: ReturnType<typeof parseAgentConfig>;
  try {
    config = parseAgentConfig(argv, process.env, { hostname: hostname(), interfaces: networkInterfaces() });
  } catch (error) {
    if (error instanceof ConfigError) {
      if (error.problems.length === 1) return fail(error.problems[0] ?? '');
      io.stderr(`${PROGRAM}: invalid configuration:\n${error.problems.map((p) => `  - ${p}`).join('\n')}\n`);
      io.stderr(`see '${PROGRAM} --help'\n`);
      return 2;
    }
    throw error;
  }
  tuneV8();
  const { runAgent } = await import('./server.js');
  return runAgent(config);
}

// Run when executed as a script (`tsx agent/cli.ts ...`); the package's bin imports `main` itself.
const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      // One line, never a stack trace: the message is what a user can act on.
      process.stderr.write(`sessionfleet-agent: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
