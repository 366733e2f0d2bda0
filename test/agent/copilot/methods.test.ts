import { describe, expect, it } from 'vitest';
import { endsTurn, routeRequest, startsNewWork } from '../../../agent/copilot/methods.js';

const rpcError = (route: ReturnType<typeof routeRequest>) => {
  if (route.kind !== 'refused') throw new Error(`expected a refusal, got ${route.kind}`);
  return route.error.toJsonRpcError(404);
};

describe('routeRequest', () => {
  it('passes the read-only global methods the SDK calls at start', () => {
    for (const method of ['ping', 'status.get', 'auth.getStatus', 'models.list', 'tools.list']) {
      expect(routeRequest(method, {})).toEqual({ kind: 'global' });
    }
    expect(routeRequest('connect', { token: 'x' })).toEqual({ kind: 'connect' });
  });

  it.each([
    'sessions.list',
    'sessions.fork',
    'account.getQuota',
    'account.logout',
    'user.settings.set',
    'plugins.install',
    'mcp.config.add',
    'runtime.shutdown',
    'sessionFs.setProvider',
    'no.such.method',
  ])('refuses the server-wide method %s', (method) => {
    expect(rpcError(routeRequest(method, {}))).toEqual({
      code: -31014,
      message: `${JSON.stringify(method)} reads or changes state the Copilot CLI shares between all of its users: this method is not available through the agent`,
      data: { code: 'METHOD_FORBIDDEN', status: 403, method },
    });
  });

  it('routes session methods by the session they name', () => {
    const id = 'f0b7a3c2-1d2e-4f5a-9b8c-7d6e5f4a3b2c';
    expect(routeRequest('session.create', { sessionId: id })).toEqual({
      kind: 'session',
      sessionId: id,
      action: 'create',
    });
    expect(routeRequest('session.resume', { sessionId: id })).toEqual({
      kind: 'session',
      sessionId: id,
      action: 'resume',
    });
    expect(routeRequest('session.send', { sessionId: id, prompt: 'x' })).toEqual({
      kind: 'session',
      sessionId: id,
      action: 'send',
    });
    expect(routeRequest('session.getMessages', { sessionId: id })).toEqual({
      kind: 'session',
      sessionId: id,
      action: 'loaded',
    });
    expect(routeRequest('session.getMetadata', { sessionId: id })).toEqual({
      kind: 'session',
      sessionId: id,
      action: 'unloaded-ok',
    });
    expect(routeRequest('session.list', {})).toEqual({ kind: 'session-list' });
    expect(routeRequest('session.getLastId', {})).toEqual({ kind: 'session-pointer' });
    expect(routeRequest('session.getForeground', {})).toEqual({ kind: 'session-pointer' });
  });

  it('refuses a session method without a session id, or with a malformed one', () => {
    expect(rpcError(routeRequest('session.create', {}))).toEqual({
      code: -32600,
      message:
        'session.create needs params.sessionId (the agent does not support sessions whose id the CLI chooses): send the session id you were given',
      data: { code: 'SESSION_ID_REQUIRED', status: 400, method: 'session.create' },
    });
    for (const bad of [42, '', 'has space', 'x'.repeat(129)]) {
      expect(rpcError(routeRequest('session.send', { sessionId: bad }))).toEqual({
        code: -32602,
        message: 'params.sessionId of session.send is not a valid session id: use 1-128 visible ASCII characters',
        data: { code: 'INVALID_SESSION_ID', status: 400, method: 'session.send' },
      });
    }
  });

  it("keeps the agent's owner record out of the client's reach", () => {
    const method = 'session.metadata.updateClientMetadata';
    const sessionId = 's-1';
    expect(routeRequest(method, { sessionId, set: { 'app/theme': 'dark' }, remove: ['app/old'] })).toEqual({
      kind: 'session',
      sessionId,
      action: 'loaded',
    });
    expect(rpcError(routeRequest(method, { sessionId, set: { 'sessionfleet/owner': 'mallory' } }))).toEqual({
      code: -31014,
      message:
        'client metadata keys under sessionfleet/ belong to the agent: this method is not available through the agent',
      data: { code: 'METHOD_FORBIDDEN', status: 403, method },
    });
    expect(rpcError(routeRequest(method, { sessionId, remove: ['sessionfleet/owner'] })).data).toMatchObject({
      code: 'METHOD_FORBIDDEN',
    });
    expect(rpcError(routeRequest(method, { sessionId, clear: true })).message).toBe(
      "clear would remove the agent's sessionfleet/* entries; remove your own keys instead: this method is not available through the agent",
    );
  });
});

describe('turns and draining', () => {
  it('a turn ends with session.idle (not an autopilot pause) or session.error', () => {
    expect(endsTurn({ type: 'session.idle', data: { mode: 'interactive' } })).toBe(true);
    expect(endsTurn({ type: 'session.idle', data: {} })).toBe(true);
    expect(endsTurn({ type: 'session.error', data: { message: 'x' } })).toBe(true);
    expect(endsTurn({ type: 'session.idle', data: { mode: 'autopilot' } })).toBe(false);
    expect(endsTurn({ type: 'assistant.idle', data: {} })).toBe(false);
    expect(endsTurn(null)).toBe(false);
  });

  it('while draining, only what starts a session or a turn is refused', () => {
    expect(['create', 'resume', 'send'].every((a) => startsNewWork(a as never))).toBe(true);
    expect(['delete', 'detach', 'loaded', 'unloaded-ok'].some((a) => startsNewWork(a as never))).toBe(false);
  });
});
