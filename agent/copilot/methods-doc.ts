/**
 * Renders `docs/copilot-methods.md` from the method table (`method-table.ts`), so the reference
 * page cannot drift from what the front does: `npm run docs:copilot-methods` writes it, a test
 * checks it is current.
 */
import { COPILOT_METHODS, type HostResource, type MethodClass, SESSION_STORE_RULES } from './method-table.js';

const HOST_LABELS: Record<HostResource, string> = {
  shell: 'shell (runs commands as the CLI)',
  files: 'files (working directories, workspaces, trusted folders)',
  plugins: 'plugins, skills and custom agents',
  extensions: 'extensions and canvases',
  mcp: 'MCP servers',
  logs: 'logs and telemetry',
};

function verdict(c: MethodClass): string {
  switch (c.touches) {
    case 'connect':
      return 'authenticated by the agent, then forwarded with its own token';
    case 'server-wide':
      return c.global === true ? 'forwarded (read-only)' : 'refused (METHOD_FORBIDDEN)';
    case 'host':
      return 'refused unless host access is allowed (see above)';
    default:
      if ('list' in c) return 'forwarded, answer filtered to the caller’s sessions';
      if ('pointer' in c) return 'forwarded, the id answered only if it is the caller’s';
      return 'forwarded if the caller may use the session';
  }
}

/** What a method's params may not ask for: the CLI's cross-session store (ADR 0024). */
function storeRule(method: string): string {
  switch (SESSION_STORE_RULES[method]) {
    case 'off':
      return '; sent with `enableSessionStore: false`, refused if it asks for the session store or sets `configDir`';
    case 'checked':
      return '; refused if it asks for the session store';
    default:
      return '';
  }
}

function section(title: string, methods: Array<[string, MethodClass]>): string[] {
  const lines = [`## ${title} (${methods.length})`, '', '| method | what the agent does |', '| --- | --- |'];
  for (const [method, c] of methods) lines.push(`| \`${method}\` | ${verdict(c)}${storeRule(method)} |`);
  lines.push('');
  return lines;
}

export function renderCopilotMethodsDoc(): string {
  const entries = Object.entries(COPILOT_METHODS).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const of = (pick: (c: MethodClass) => boolean) => entries.filter(([, c]) => pick(c));
  const lines = [
    '# Copilot methods through the agent',
    '',
    '<!-- Generated from agent/copilot/method-table.ts by `npm run docs:copilot-methods`; do not edit. -->',
    '',
    'The Copilot CLI isolates nothing between its clients, so the agent classifies every method it',
    'forwards by what it touches (SPEC.md §7). A method that is not in this table is refused with',
    '`METHOD_FORBIDDEN` (JSON-RPC -31014): a new CLI release cannot open a hole silently.',
    '',
    '- **conversation**: the session’s turns, messages and events, and the answers to what the CLI',
    '  asked this session’s client (tool calls, permission prompts, elicitations);',
    '- **session metadata**: the session’s own settings and records;',
    '- **host**: the machine the CLI runs on. Such a call runs with the CLI’s rights, whatever session',
    '  it names: `session.shell.exec` on your own session can `cat` another session’s',
    '  `~/.copilot/session-state/<id>/events.jsonl`;',
    '- **server-wide**: state the CLI shares between all of its users.',
    '',
    'Every `session.*` method must name its session in `params.sessionId` (one path segment of 1–128',
    'visible ASCII characters, the same rule as the HTTP front) and is checked against the',
    'session’s owner.',
    '',
    '## When host-access methods pass',
    '',
    'Only where the host holds no other principal’s state, unless the policy sets',
    '`copilotHostAccess: true` (`check-policy` warns what that gives up):',
    '',
    '| isolation | host access by default | why |',
    '| --- | --- | --- |',
    '| `shared`, `tenant`, `request` | refused | several principals’ sessions live on one CLI |',
    '| `session` with `sharedSessionState`, the shared volume mounted into the app | refused | the shared volume holds every user’s state |',
    '| `session` without `recycleAfterSession` | refused | the instance keeps what earlier sessions left on its disk: their state unless the agent stages it, files their tools wrote |',
    '| `session` with `recycleAfterSession`, state on the instance | allowed | the instance only ever holds its one session |',
    '| `session` with `recycleAfterSession` and `sharedSessionState`, state staged by the agent (`--app-state-dir`) | allowed | the shared volume is the agent’s alone; the app’s directory holds only the session it serves ([ADR 0019](adr/0019-session-state-staged-by-the-agent.md)) |',
    '',
    'This covers the protocol only: the model’s own tools (shell, file reads) run on the same host',
    'with the same rights, so they reach whatever the host holds — which is why the file system is',
    'isolated too where the agent stages state (see [isolation](isolation.md#what-each-isolation-mode-isolates)).',
    'Limit the tools further with the session’s permission settings or a per-user instance.',
    '',
    '## The CLI’s session store',
    '',
    'The CLI records every session it tracks in one SQLite file per process,',
    '`~/.copilot/session-store.db`, which the model’s `session_store_sql` tool and its shell read',
    'whatever session they run in. So `session.create` and `session.resume` are always sent with',
    '`enableSessionStore: false` (unset, the CLI tracks), and a load or `session.options.update` that',
    'asks for the store (`enableSessionStore: true`, capability `session-store`) is refused with',
    '`SESSION_STORE_FORBIDDEN` (JSON-RPC -31081), in every isolation mode',
    '([ADR 0024](adr/0024-copilot-session-store-off.md)). A load that sets its own `configDir` is',
    'refused with `CONFIG_DIR_FORBIDDEN` (-31082): the CLI would keep that session’s state, and a',
    'store, under it, outside the directory the agent stages and clears between users.',
    '',
    '## Host resources',
    '',
    ...(Object.keys(HOST_LABELS) as HostResource[]).map(
      (r) => `- \`${r}\`: ${HOST_LABELS[r]} — ${of((c) => c.touches === 'host' && c.host === r).length} methods`,
    ),
    '',
    ...section(
      'Conversation',
      of((c) => c.touches === 'conversation'),
    ),
    ...section(
      'Session metadata',
      of((c) => c.touches === 'session-metadata'),
    ),
    ...(Object.keys(HOST_LABELS) as HostResource[]).flatMap((r) =>
      section(
        `Host: ${HOST_LABELS[r]}`,
        of((c) => c.touches === 'host' && c.host === r),
      ),
    ),
    ...section(
      'Server-wide',
      of((c) => c.touches === 'server-wide' || c.touches === 'connect'),
    ),
  ];
  return `${lines.join('\n').trimEnd()}\n`;
}
