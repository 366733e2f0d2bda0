/**
 * `sessionfleet-agent`: the agent's entry point. Subcommands `check-policy` and `print-schema`
 * work without any server around; the default runs the agent (`server.ts`).
 */
import { readFile } from 'node:fs/promises';
import { hostname, networkInterfaces } from 'node:os';
import { pathToFileURL } from 'node:url';
import { policyJsonSchema, validatePolicyText } from '../policy/index.js';
import { adminCommand } from './admin-cli.js';
import { ConfigError, parseAgentConfig, usage } from './config.js';
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

export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'check-policy') return checkPolicy(rest[0], io);
  if (command === 'admin') return adminCommand(rest, io);
  if (command === 'print-schema') {
    io.stdout(`${JSON.stringify(policyJsonSchema(), null, 2)}\n`);
    return 0;
  }
  if (command === '--help' || command === '-h' || command === 'help') {
    io.stdout(`${usage()}\n`);
    return 0;
  }
  let config: ReturnType<typeof parseAgentConfig>;
  try {
    config = parseAgentConfig(argv, process.env, { hostname: hostname(), interfaces: networkInterfaces() });
  } catch (error) {
    if (error instanceof ConfigError) {
      io.stderr(`${error.message}\n\n${usage()}\n`);
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
      process.stderr.write(`sessionfleet-agent: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
