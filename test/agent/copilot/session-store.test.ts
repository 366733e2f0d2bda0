import { describe, expect, it } from 'vitest';
import { routeRequest } from '../../../agent/copilot/methods.js';
import { withSessionStoreOff } from '../../../agent/copilot/session-store.js';

const id = 'f0b7a3c2-1d2e-4f5a-9b8c-7d6e5f4a3b2c';
const rpcError = (route: ReturnType<typeof routeRequest>) => {
  if (route.kind !== 'refused') throw new Error(`expected a refusal, got ${route.kind}`);
  return route.error.toJsonRpcError(404);
};

describe("the Copilot CLI's cross-session store (ADR 0024)", () => {
  it.each(['session.create', 'session.resume', 'session.options.update'])(
    'refuses %s asking for the store on, naming the field',
    (method) => {
      expect(rpcError(routeRequest(method, { sessionId: id, enableSessionStore: true }))).toEqual({
        code: -31081,
        message: `${method} asks for the Copilot CLI's cross-session store (enableSessionStore: true): the store is one file per CLI that records every session the CLI serves, so it would show other users' prompts; the agent keeps it off for every session: leave enableSessionStore unset or false and do not request the session-store capability`,
        data: { code: 'SESSION_STORE_FORBIDDEN', status: 403, method, fields: ['enableSessionStore: true'] },
      });
    },
  );

  it('refuses the session-store capability (it exposes the store to the model), alone or with the field', () => {
    const both = rpcError(
      routeRequest('session.create', {
        sessionId: id,
        enableSessionStore: true,
        sessionCapabilities: ['plan-mode', 'session-store'],
      }),
    );
    expect(both.data).toEqual({
      code: 'SESSION_STORE_FORBIDDEN',
      status: 403,
      method: 'session.create',
      fields: ['enableSessionStore: true', 'sessionCapabilities "session-store"'],
    });
    expect(
      rpcError(routeRequest('session.resume', { sessionId: id, sessionCapabilities: ['session-store'] })).code,
    ).toBe(-31081);
  });

  it('passes loads and updates that leave the store unset or off, and ignores the field elsewhere', () => {
    for (const params of [{}, { enableSessionStore: false }, { sessionCapabilities: ['plan-mode'] }]) {
      expect(routeRequest('session.create', { sessionId: id, ...params }).kind).toBe('session');
      expect(routeRequest('session.options.update', { sessionId: id, ...params }).kind).toBe('session');
    }
    expect(routeRequest('session.send', { sessionId: id, enableSessionStore: true }).kind).toBe('session');
  });

  it('sends every session load with the store off, whatever the params said; other methods unchanged', () => {
    expect(withSessionStoreOff('session.create', { sessionId: id, model: 'm' })).toEqual({
      sessionId: id,
      model: 'm',
      enableSessionStore: false,
    });
    // An unset field keeps the CLI's default, which tracks: the agent's own resumes send only the id.
    expect(withSessionStoreOff('session.resume', { sessionId: id })).toEqual({
      sessionId: id,
      enableSessionStore: false,
    });
    expect(withSessionStoreOff('session.resume', { sessionId: id, enableSessionStore: true })).toEqual({
      sessionId: id,
      enableSessionStore: false,
    });
    const params = { sessionId: id, prompt: 'hi' };
    expect(withSessionStoreOff('session.send', params)).toBe(params);
    expect(withSessionStoreOff('session.options.update', params)).toBe(params);
    expect(withSessionStoreOff('ping', undefined)).toBeUndefined();
  });
});

describe("a session's own configDir (ADR 0024)", () => {
  it.each(['session.create', 'session.resume'])('refuses %s naming a configDir, quoting it', (method) => {
    expect(rpcError(routeRequest(method, { sessionId: id, configDir: '/tmp/mine' }))).toEqual({
      code: -31082,
      message: `${method} sets params.configDir ("/tmp/mine"): the CLI would keep the session's state there, outside the directory the agent stages and clears between users, so it would stay on the instance for the next user: leave configDirectory unset (the CLI's directories are the instance's)`,
      data: { code: 'CONFIG_DIR_FORBIDDEN', status: 403, method, field: 'configDir' },
    });
  });

  it('passes loads without one (the SDK omits it unless configDirectory is set)', () => {
    expect(routeRequest('session.create', { sessionId: id, configDir: null }).kind).toBe('session');
    expect(routeRequest('session.resume', { sessionId: id }).kind).toBe('session');
  });

  it('quotes at most 200 characters of a long configDir', () => {
    const route = routeRequest('session.create', { sessionId: id, configDir: `/${'x'.repeat(5000)}` });
    expect(rpcError(route).message).toContain(`("/${'x'.repeat(198)}…)`);
    expect(rpcError(route).message.length).toBeLessThan(600);
  });
});
