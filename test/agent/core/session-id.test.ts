import { describe, expect, it } from 'vitest';
import { routeRequest } from '../../../agent/copilot/methods.js';
import { isValidSessionId, sessionIdProblem } from '../../../agent/core/session-id.js';
import { classify } from '../../../agent/http/affinity.js';

const ID = 'f0b7a3c2-1d2e-4f5a-9b8c-7d6e5f4a3b2c';
const NOT_ONE_SEGMENT = [`${ID}/`, `${ID}/../other`, '../x', `${ID}\\..\\x`, '.', '..', '/'];

describe('the one session id rule', () => {
  it('accepts 1-128 visible ASCII characters that name one directory', () => {
    for (const id of [ID, 'a', 'x'.repeat(128), 'user.1-2_3~', '...', 'a..b']) expect(isValidSessionId(id)).toBe(true);
  });

  it.each(NOT_ONE_SEGMENT)('refuses %j: not one path segment', (id) => {
    expect(sessionIdProblem(id)).toMatch(/directory/);
  });

  it('refuses what is not 1-128 visible ASCII characters', () => {
    for (const id of [42, '', 'has space', 'x'.repeat(129), 'é', undefined]) {
      expect(sessionIdProblem(id)).toBe('it is not 1-128 visible ASCII characters');
    }
  });

  it.each(NOT_ONE_SEGMENT)('the Copilot front answers %j with INVALID_SESSION_ID', (id) => {
    const route = routeRequest('session.resume', { sessionId: id });
    if (route.kind !== 'refused') throw new Error(`expected a refusal, got ${route.kind}`);
    expect(route.error.toJsonRpcError(404)).toEqual({
      code: -32602,
      message: `params.sessionId of session.resume is not a valid session id (${sessionIdProblem(id)}): use 1-128 visible ASCII characters`,
      data: { code: 'INVALID_SESSION_ID', status: 400, method: 'session.resume' },
    });
  });

  it.each(NOT_ONE_SEGMENT)(
    'the HTTP front answers %j in a header or an Mcp-Session-Id with INVALID_SESSION_ID',
    (id) => {
      const facts = (headers: Record<string, string>) => ({
        method: 'POST',
        path: '/mcp',
        query: '',
        headers,
        upgrade: false,
      });
      const header = classify(facts({ 'x-affinity': id }), {
        affinity: { type: 'header', headerName: 'X-Affinity' },
        statelessUpstream: false,
      });
      const mcp = classify(facts({ 'mcp-session-id': id }), {
        affinity: { type: 'mcp-streamable-http' },
        statelessUpstream: false,
      });
      for (const route of [header, mcp]) {
        if (route.kind !== 'reject') throw new Error(`expected a refusal, got ${route.kind}`);
        expect(route.error.code).toBe('INVALID_SESSION_ID');
      }
    },
  );
});
