/**
 * The agent's reference pages: command line (commands, exit codes), flags, error catalogue and
 * metrics. Each is read from the running code; the meaning of an error code is its TSDoc in the
 * catalogue, read with the TypeScript parser.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { ConfigError, parseAgentConfig } from '../../agent/config.js';
import { code, page, table } from './markdown.js';
import {
  AGENT_FLAGS,
  agentMetricsRegistry,
  CLI_COMMANDS,
  DEFAULT_METRICS_PREFIX,
  ERRORS,
  ERRORS_FILE,
  EXIT_CODES,
  envName,
} from './sources.js';

/** The flags the agent refuses to start without, as its own check reports them. */
function requiredFlags(): Set<string> {
  try {
    parseAgentConfig([], {});
  } catch (error) {
    if (error instanceof ConfigError)
      return new Set(error.problems.flatMap((p) => /^--([\w-]+) is required/.exec(p)?.[1] ?? []));
  }
  return new Set();
}

/** Splits "what it does (default X)" into the meaning and the default. */
export function splitDefault(description: string): { meaning: string; default?: string } {
  const match = /\s*\(default:? ([^()]*(?:\([^()]*\)[^()]*)*)\)/.exec(description);
  if (!match) return { meaning: description };
  return { meaning: description.replace(match[0], '').trim(), default: match[1] };
}

export function agentFlagsPage(): string {
  const required = requiredFlags();
  const rows = Object.entries(AGENT_FLAGS).map(([name, flag]) => {
    const { meaning, default: fallback } = splitDefault(flag.description);
    const shown = fallback === undefined ? 'unset' : fallback.includes(' ') ? fallback : code(fallback);
    return [code(`--${name}`), code(envName(name)), required.has(name) ? 'required' : shown, meaning];
  });
  return page(
    'Agent flags',
    "Flags of `sessionfleet-agent` (the package's `bin`). Each may also come from the environment variable shown; a flag on the command line wins over the variable. Errors name the flag or variable, the value and the rule, and are all reported at once; see [the command line](cli.md) for commands and exit codes.",
    table(['flag', 'environment variable', 'default', 'meaning'], rows),
  );
}

export function cliPage(): string {
  return page(
    'Command line',
    '`sessionfleet-agent` behaves like other Unix tools: `--help` and `--version` on every command, errors on one line on stderr (never a stack trace), a "did you mean" for a mistyped flag or command, and the exit codes below. `npm run demo -- --help` follows the same rules.',
    table(
      ['command', 'what it does'],
      Object.values(CLI_COMMANDS).map((c) => [code(c.usage), c.summary]),
    ),
    '`sessionfleet-agent --version` prints the package version. `sessionfleet-agent <command> --help` prints the help of one command. The flags are listed in [agent flags](agent-flags.md).',
    '## Exit codes',
    table(
      ['code', 'meaning'],
      EXIT_CODES.map((e) => [String(e.code), e.meaning]),
    ),
    '## Error lines',
    [
      'A usage error is one line naming the flag or command, with the nearest known name when there is one:',
      '',
      '```console',
      '$ sessionfleet-agent --polcy policy.json',
      "sessionfleet-agent: unknown flag --polcy (did you mean --policy?); see 'sessionfleet-agent --help'",
      '$ sessionfleet-agent chek-policy policy.json',
      'sessionfleet-agent: unknown command "chek-policy" (did you mean check-policy?); see \'sessionfleet-agent --help\'',
      '```',
      '',
      'Several configuration problems are listed one per line, each naming the flag or environment variable, the value and the rule; `check-policy` lists every policy error the same way.',
    ].join('\n'),
  );
}

/** The TSDoc summary of each entry of the `ERRORS` object literal in `file`. */
export function errorMeanings(root: string, file = ERRORS_FILE): Map<string, string> {
  const source = ts.createSourceFile(file, readFileSync(join(root, file), 'utf8'), ts.ScriptTarget.Latest, true);
  const meanings = new Map<string, string>();
  const visit = (node: ts.Node): void => {
    if (
      ts.isVariableDeclaration(node) &&
      ts.isIdentifier(node.name) &&
      node.name.text === 'ERRORS' &&
      node.initializer
    ) {
      let init: ts.Expression = node.initializer;
      while (ts.isAsExpression(init) || ts.isSatisfiesExpression(init)) init = init.expression;
      if (ts.isObjectLiteralExpression(init))
        for (const prop of init.properties) {
          const docs = ts.getJSDocCommentsAndTags(prop).filter(ts.isJSDoc);
          const text = docs.map((d) => ts.getTextOfJSDocComment(d.comment) ?? '').join(' ');
          if (prop.name && ts.isIdentifier(prop.name)) meanings.set(prop.name.text, text);
        }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return meanings;
}

export function errorsPage(root: string): string {
  const meanings = errorMeanings(root);
  const rows = Object.values(ERRORS).map((e) => {
    const meaning = meanings.get(e.code);
    if (!meaning) throw new Error(`gen-docs: ERRORS.${e.code} in ${ERRORS_FILE} has no TSDoc saying what it means`);
    return [
      code(e.code),
      e.status === 'expired' ? '`expiredSessionStatus`' : String(e.status),
      String(e.jsonRpcCode),
      meaning,
      e.hint,
    ];
  });
  return page(
    'Error catalogue',
    'Every rejection the agent sends, on either front, comes from one catalogue: a stable code, its HTTP status, a JSON-RPC code for the MCP and Copilot fronts, and a message that says what to do next (the last column is appended to it).',
    [
      'Plain HTTP clients get `{"error": {"code", "message", "status", "retryAfterSeconds"?, ...details}}` (with `Retry-After` when there is a wait); the MCP transports and the Copilot front get a JSON-RPC error whose `data` carries the same fields:',
      '',
      '```json',
      '{"error":{"code":"SESSION_LIMIT_REACHED","message":"this instance holds its maximum of 20 sessions: back off and retry","status":429,"sessionsPerInstance":20,"retryAfterSeconds":60}}',
      '{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found: start a new session","data":{"code":"SESSION_NOT_FOUND","status":404}},"id":null}',
      '```',
    ].join('\n'),
    "`expiredSessionStatus` is the policy field of that name: 404 by default for the MCP transports (their clients re-initialize on it), 401 for header and cookie affinity. Any other status a client sees is the upstream's own answer, passed through.",
    table(['code', 'HTTP', 'JSON-RPC', 'meaning', 'what the client should do'], rows),
  );
}

export async function metricsPage(): Promise<string> {
  const registry = await agentMetricsRegistry();
  const metrics = await registry.getMetricsAsJSON();
  const rows = metrics
    .map((m) => {
      const instance = registry.getSingleMetric(m.name) as unknown as { labelNames?: readonly string[] } | undefined;
      const labels = ['instance_id', ...(instance?.labelNames ?? [])];
      return [code(m.name), String(m.type), labels.map(code).join(', '), m.help];
    })
    .sort((a, b) => (a[0] ?? '').localeCompare(b[0] ?? ''));
  return page(
    'Metrics',
    "The agent serves Prometheus text format at `GET /metrics` on its admin port (`--admin-listen`). Every series carries the label `instance_id` (`--instance-id`). Metric names are part of the public interface: the Kubernetes construct's HorizontalPodAutoscaler scales on `sessionfleet_session_utilization`.",
    table(['name', 'type', 'labels', 'help'], rows),
    `Node.js process metrics (\`collectDefaultMetrics\` of prom-client) are served too, prefixed \`${DEFAULT_METRICS_PREFIX}\`, so \`grep sessionfleet_\` shows them with the rest.`,
  );
}
