/**
 * Command-line parsing shared by `sessionfleet-agent` and the demo: `node:util` parseArgs, with
 * its errors (whose text suggests a `--` positional trick and has no "did you mean") replaced by
 * one line that names the flag, the rule, and the nearest known flag or command.
 */
import { parseArgs } from 'node:util';
import { closestName } from '../policy/format.js';

export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
}

/** A command line a user got wrong: one line, no stack trace, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface ParsedCommandLine {
  readonly values: Record<string, string | boolean | undefined>;
  readonly positionals: readonly string[];
}

/** `--polcy` → `unknown flag --polcy (did you mean --policy?)`. */
export function unknownFlagMessage(flag: string, known: readonly string[]): string {
  const near = closestName(flag.replace(/^-+/, ''), known);
  return `unknown flag ${flag}${near ? ` (did you mean --${near}?)` : ''}`;
}

/** `chek-policy` → `unknown command "chek-policy" (did you mean check-policy?)`, listing the commands otherwise. */
export function unknownCommandMessage(command: string, known: readonly string[]): string {
  const near = closestName(command, known);
  return `unknown command ${JSON.stringify(command)} (${near ? `did you mean ${near}?` : `the commands are ${known.join(', ')}`})`;
}

/**
 * Parses `argv` against `flags`. Unknown flags, a string flag without its value, a value given to a
 * boolean flag and (unless `positionals` allows them) stray arguments throw `UsageError`.
 */
export function parseCommandLine(
  argv: readonly string[],
  flags: Readonly<Record<string, FlagSpec>>,
  options: { positionals?: number } = {},
): ParsedCommandLine {
  const names = Object.keys(flags);
  const shorts = new Map(
    Object.entries(flags).flatMap(([name, spec]) => (spec.short ? [[spec.short, name] as const] : [])),
  );
  for (const arg of argv) {
    if (arg === '--') break;
    if (arg.startsWith('--')) {
      const name = arg.slice(2).split('=')[0] ?? '';
      if (!(name in flags)) throw new UsageError(unknownFlagMessage(`--${name}`, names));
    } else if (/^-[^-\d]/.test(arg)) {
      const letter = arg[1] ?? '';
      if (!shorts.has(letter)) throw new UsageError(unknownFlagMessage(arg, names));
    }
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    const specs = Object.fromEntries(
      Object.entries(flags).map(([name, s]) => [name, s.short ? { type: s.type, short: s.short } : { type: s.type }]),
    );
    parsed = parseArgs({ args: [...argv], options: specs, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(describeParseError(error, flags));
  }
  const allowed = options.positionals ?? 0;
  if (parsed.positionals.length > allowed) {
    const extra = parsed.positionals[allowed];
    throw new UsageError(
      allowed === 0 ? `unexpected argument ${JSON.stringify(extra)}` : `too many arguments: ${JSON.stringify(extra)}`,
    );
  }
  return { values: parsed.values as ParsedCommandLine['values'], positionals: parsed.positionals };
}

/** parseArgs' remaining errors in our words (its messages are long and suggest `--` tricks). */
function describeParseError(error: unknown, flags: Readonly<Record<string, FlagSpec>>): string {
  const code = (error as { code?: string }).code;
  const message = error instanceof Error ? error.message : String(error);
  const flag = /'(-[^' ]+)/.exec(message)?.[1] ?? '';
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const name = flag.replace(/^-+/, '');
    const spec = flags[name] ?? [...Object.entries(flags)].find(([, s]) => s.short === name)?.[1];
    return spec?.type === 'boolean' ? `${flag} takes no value` : `${flag} needs a value`;
  }
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return unknownFlagMessage(flag, Object.keys(flags));
  return message.split('\n')[0] ?? message;
}
