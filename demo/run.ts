/**
 * `npm run demo`: the sample MCP server (`demo/mcp-server.ts`) with a sessionfleet agent in front
 * of it on the embedded in-memory store, and how to connect to it. Ctrl-C stops both (the agent
 * drains first).
 *
 *   npm run demo -- [--affinity mcp-streamable-http|mcp-sse] [--listen 127.0.0.1:8080]
 *                   [--admin-listen 127.0.0.1:9090] [--smoke] [--help] [--version]
 *
 * `--smoke` connects the MCP SDK's own client through the agent, calls two tools, prints what came
 * back and exits (the tests run it so the demo keeps working).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { type FlagSpec, type ParsedCommandLine, parseCommandLine, UsageError } from '../agent/cli-args.js';
import { packageVersion } from '../agent/cli-usage.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const ADMIN_TOKEN = 'demo-admin-token';

const DEMO_FLAGS = {
  affinity: { type: 'string' },
  listen: { type: 'string' },
  'admin-listen': { type: 'string' },
  smoke: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const satisfies Record<string, FlagSpec>;

const DEMO_USAGE = `usage: npm run demo -- [flags]

Runs the sample MCP server with a sessionfleet agent in front of it (embedded store, one instance)
and prints how to connect. Ctrl-C stops both.

flags:
  --affinity <type>          mcp-streamable-http (default) or mcp-sse
  --listen <host:port>       the agent's client address (default 127.0.0.1:8080)
  --admin-listen <host:port> the agent's admin address (default 127.0.0.1:9090)
  --smoke                    connect the MCP SDK's client through the agent, call two tools, print, exit
  --help, -h                 print this help
  --version, -V              print the version

exit codes: 0 success, 1 the demo failed while running, 2 usage error`;

/** The demo's flags with defaults, or the exit code when it should stop here (help, version, usage error). */
function readFlags(argv: readonly string[]) {
  let values: ParsedCommandLine['values'];
  try {
    ({ values } = parseCommandLine(argv, DEMO_FLAGS));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`demo: ${error.message}; see 'npm run demo -- --help'\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${DEMO_USAGE}\n`);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  const affinity = String(values.affinity ?? 'mcp-streamable-http');
  if (affinity !== 'mcp-streamable-http' && affinity !== 'mcp-sse') {
    process.stderr.write(
      `demo: --affinity must be mcp-streamable-http or mcp-sse, not ${JSON.stringify(affinity)}; see 'npm run demo -- --help'\n`,
    );
    return 2;
  }
  return {
    affinity,
    listen: String(values.listen ?? '127.0.0.1:8080'),
    'admin-listen': String(values['admin-listen'] ?? '127.0.0.1:9090'),
    smoke: values.smoke === true,
  } as const;
}

const flags = readFlags(process.argv.slice(2));
if (typeof flags === 'number') process.exit(flags);
const values = flags;
const affinity = values.affinity;

const children: ChildProcess[] = [];

/** Starts `node --import tsx <args>`; resolves with the first stdout line that `pick` accepts, parsed. */
function start<T>(args: string[], pick: (line: Record<string, unknown>) => T | undefined, echo: string | undefined) {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise<T>((resolve, reject) => {
    let found = false;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (echo && !values.smoke) process.stdout.write(`${echo} ${line}\n`);
      if (found) return;
      try {
        const value = pick(JSON.parse(line) as Record<string, unknown>);
        if (value !== undefined) {
          found = true;
          resolve(value);
        }
      } catch {
        // not a JSON line
      }
    });
    child.once('exit', (code) => {
      if (!found) reject(new Error(`${args[0]} exited (${code}) before it was ready`));
    });
  });
}

async function smoke(url: string): Promise<void> {
  const transport =
    affinity === 'mcp-sse'
      ? new SSEClientTransport(new URL(`${url}/sse`))
      : new StreamableHTTPClientTransport(new URL(`${url}/mcp`));
  const client = new Client({ name: 'sessionfleet-demo-smoke', version: '1.0.0' });
  await client.connect(transport);
  const tools = await client.listTools();
  const echo = await client.callTool({ name: 'echo', arguments: { text: 'hello through the agent' } });
  const whoami = await client.callTool({ name: 'whoami', arguments: {} });
  process.stdout.write(
    `${JSON.stringify({ tools: tools.tools.map((t) => t.name), echo: echo.content, session: whoami.content })}\n`,
  );
  await client.close();
}

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'sessionfleet-demo-'));
  try {
    const server = await start(
      ['demo/mcp-server.ts', '--port', '0'],
      (line) => (line.listening as { port: number } | undefined)?.port,
      undefined,
    );
    const policyFile = join(dir, 'policy.json');
    const policy = {
      isolation: 'shared',
      affinity: { type: affinity },
      sessionsPerInstance: 5,
      concurrencyPerInstance: 20,
      sessionLifetimeSeconds: 3600,
      sessionIdleTimeoutSeconds: 600,
    };
    writeFileSync(policyFile, JSON.stringify(policy, null, 2));
    const ports = await start(
      [
        'agent/cli.ts',
        '--policy',
        policyFile,
        '--upstream',
        `http://127.0.0.1:${server}`,
        '--listen',
        values.listen,
        '--admin-listen',
        values['admin-listen'],
        '--admin-token',
        ADMIN_TOKEN,
        '--instance-id',
        'demo',
      ],
      (line) =>
        line.msg === 'agent listening' ? (line as { client: { port: number }; admin: { port: number } }) : undefined,
      '[agent]',
    );
    const url = `http://127.0.0.1:${ports.client.port}`;
    const admin = `http://127.0.0.1:${ports.admin.port}`;
    if (values.smoke) {
      await smoke(url);
      return 0;
    }
    const endpoint = affinity === 'mcp-sse' ? `${url}/sse` : `${url}/mcp`;
    process.stdout.write(`
sessionfleet demo: an MCP server (real SDK, port ${server}) behind a sessionfleet agent.
Policy (${policyFile}): ${JSON.stringify(policy)}

Connect an MCP client to   ${endpoint}   (transport: ${affinity === 'mcp-sse' ? 'SSE' : 'Streamable HTTP'})
  e.g. npx @modelcontextprotocol/inspector   then choose ${affinity === 'mcp-sse' ? '"SSE"' : '"Streamable HTTP"'} and that URL
  tools: echo, sleep (holds a request in flight), whoami (the session id the server sees)

Try the rules by hand:
${affinity === 'mcp-sse' ? sseByHand(url) : streamableByHand(url)}
  curl -s ${admin}/readyz       curl -s ${admin}/metrics | grep -E '^sessionfleet_(active|sessions|rejections)'
  curl -s ${admin}/admin/sessions -H 'authorization: Bearer ${ADMIN_TOKEN}'

Ctrl-C stops both.
`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    return 0;
  } finally {
    // The agent drains on SIGTERM; the server goes after it.
    for (const child of children.reverse()) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`demo: ${error instanceof Error ? error.message : String(error)}\n`);
    for (const child of children) child.kill('SIGKILL');
    process.exitCode = 1;
  },
);

const INITIALIZE =
  '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}';

/** The by-hand lines for Streamable HTTP: one POST opens a session. */
function streamableByHand(url: string): string {
  return `  curl -si ${url}/mcp -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \\
       -d '${INITIALIZE}'
       (the answer carries Mcp-Session-Id; a sixth session gets 429, an unknown id 404)`;
}

/** The by-hand lines for the SSE transport: the stream names the session, POSTs go to its endpoint. */
function sseByHand(url: string): string {
  return `  curl -N ${url}/sse
       (keep it open: its first event, "endpoint", gives /messages?sessionId=<id>; a sixth stream gets 429)
  curl -si '${url}/messages?sessionId=<id>' -H 'content-type: application/json' -d '${INITIALIZE}'
       (202 here; the answer arrives on the stream. An unknown id gets 404)`;
}
