import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COPILOT_METHODS, methodClass } from '../../../agent/copilot/method-table.js';
import { hostAccessAllowed, routeRequest } from '../../../agent/copilot/methods.js';
import { renderCopilotMethodsDoc } from '../../../agent/copilot/methods-doc.js';
import { validatePolicy } from '../../../policy/index.js';
import { REPO_ROOT } from '../../helpers/run.js';

const ID = 'f0b7a3c2-1d2e-4f5a-9b8c-7d6e5f4a3b2c';

/** Every method name the installed SDK sends with `sendRequest("…")`. */
function methodsTheSdkSends(): string[] {
  const require = createRequire(import.meta.url);
  const root = dirname(require.resolve('@github/copilot-sdk'));
  const files = [
    ...readdirSync(root)
      .filter((f) => f.endsWith('.js'))
      .map((f) => join(root, f)),
    join(root, 'generated', 'rpc.js'),
  ];
  const found = new Set<string>();
  for (const file of files) {
    for (const match of readFileSync(file, 'utf8').matchAll(/sendRequest\("([A-Za-z0-9.$/]+)"/g)) found.add(match[1]!);
  }
  return [...found].sort();
}

const refusal = (route: ReturnType<typeof routeRequest>) => {
  if (route.kind !== 'refused') throw new Error(`expected a refusal, got ${route.kind}`);
  return route.error.toJsonRpcError(404);
};

describe('the Copilot method table', () => {
  it('knows every method the installed SDK can send (a new release adds them here, classified)', () => {
    const sent = methodsTheSdkSends();
    expect(sent.length).toBeGreaterThan(300);
    expect(sent.filter((m) => methodClass(m) === undefined)).toEqual([]);
  });

  it('refuses a session method it does not know, never forwarding it blind', () => {
    expect(refusal(routeRequest('session.brandNew.read', { sessionId: ID }))).toEqual({
      code: -31014,
      message:
        '"session.brandNew.read" is not in the agent\'s table of Copilot methods (docs/copilot-methods.md), so it is not forwarded: this method is not available through the agent',
      data: { code: 'METHOD_FORBIDDEN', status: 403, method: 'session.brandNew.read' },
    });
    expect(methodClass('toString')).toBeUndefined();
    expect(refusal(routeRequest('__proto__', {})).data).toMatchObject({ code: 'METHOD_FORBIDDEN' });
  });

  it.each([
    'session.shell.exec',
    'session.workspaces.readFile',
    'session.mcp.startServer',
    'session.debug.collectLogs',
  ])('refuses the host-access method %s by default and passes it when the policy allows host access', (method) => {
    const c = COPILOT_METHODS[method];
    if (c?.touches !== 'host') throw new Error(`${method} is not classified as host access`);
    expect(refusal(routeRequest(method, { sessionId: ID }))).toEqual({
      code: -31014,
      message: `"${method}" reaches the host the Copilot CLI runs on (${c.host}), which holds other users' session state under this policy; the policy field copilotHostAccess opts in: this method is not available through the agent`,
      data: { code: 'METHOD_FORBIDDEN', status: 403, method, host: c.host },
    });
    expect(routeRequest(method, { sessionId: ID }, { hostAccess: true })).toEqual({
      kind: 'session',
      sessionId: ID,
      action: 'loaded',
    });
  });

  it('the answers the SDK gives to what the CLI asked (tools, permissions, prompts) are conversation, not host access', () => {
    for (const method of [
      'session.tools.handlePendingToolCall',
      'session.permissions.handlePendingPermissionRequest',
      'session.ui.handlePendingElicitation',
      'session.commands.handlePendingCommand',
      'session.mcp.oauth.handlePendingRequest',
    ]) {
      expect(COPILOT_METHODS[method]).toEqual({ touches: 'conversation' });
    }
  });

  it('allows host access only where the host holds no other principal state, unless the policy opts in', () => {
    const base = { sharedSessionState: false, recycleAfterSession: false, copilotHostAccess: undefined };
    expect(hostAccessAllowed({ ...base, isolation: 'shared' })).toBe(false);
    expect(hostAccessAllowed({ ...base, isolation: 'tenant' })).toBe(false);
    expect(hostAccessAllowed({ ...base, isolation: 'session' })).toBe(false);
    expect(hostAccessAllowed({ ...base, isolation: 'session', recycleAfterSession: true })).toBe(true);
    expect(
      hostAccessAllowed({ ...base, isolation: 'session', recycleAfterSession: true, sharedSessionState: true }),
    ).toBe(false);
    expect(hostAccessAllowed({ ...base, isolation: 'shared', copilotHostAccess: true })).toBe(true);
  });

  it('allows host access under recycled session isolation with shared state once the agent stages it (ADR 0019)', () => {
    const base = { sharedSessionState: true, recycleAfterSession: true, copilotHostAccess: undefined };
    expect(hostAccessAllowed({ ...base, isolation: 'session' }, true)).toBe(true);
    expect(hostAccessAllowed({ ...base, isolation: 'session' }, false)).toBe(false);
    // Staging empties the app's directory, not the CLI's own database of what it served: only a
    // recycled instance holds nothing of an earlier session.
    expect(hostAccessAllowed({ ...base, isolation: 'session', recycleAfterSession: false }, true)).toBe(false);
    expect(hostAccessAllowed({ ...base, isolation: 'shared' }, true)).toBe(false);
  });

  it('check-policy warns what copilotHostAccess gives up', () => {
    const result = validatePolicy({
      isolation: 'shared',
      affinity: { type: 'copilot-jsonrpc' },
      copilotHostAccess: true,
    });
    expect(result.ok).toBe(true);
    expect(result.warnings).toEqual([
      {
        path: 'copilotHostAccess',
        message:
          'copilotHostAccess lets every Copilot user run shell commands and read files, plugins, extensions, MCP servers and logs on a host that holds other users\' session state (isolation "shared"): any user can read any other user\'s sessions',
      },
    ]);
    const recycled = validatePolicy({
      isolation: 'session',
      affinity: { type: 'copilot-jsonrpc' },
      recycleAfterSession: true,
      instanceVcpu: 2,
      copilotHostAccess: true,
    });
    expect(recycled.warnings).toEqual([]);
  });

  it('docs/copilot-methods.md is rendered from the table (npm run docs:copilot-methods)', () => {
    expect(readFileSync(join(REPO_ROOT, 'docs', 'copilot-methods.md'), 'utf8')).toBe(renderCopilotMethodsDoc());
  });
});
