import { describe, expect, it } from 'vitest';
import { AgentError, ERRORS } from '../../../agent/core/errors.js';

describe('the error catalogue', () => {
  it('has unique codes and a status for each', () => {
    for (const [key, def] of Object.entries(ERRORS)) {
      expect(def.code).toBe(key);
      expect(def.status === 'expired' || (def.status >= 400 && def.status < 600)).toBe(true);
    }
  });

  it("gives each of the agent's own refusals a JSON-RPC code of its own, in -32010..-32039", () => {
    const own = Object.values(ERRORS).filter((d) => d.jsonRpcCode <= -32010 && d.jsonRpcCode >= -32039);
    expect(new Set(own.map((d) => d.jsonRpcCode)).size).toBe(own.length);
    expect(ERRORS.TENANT_FORBIDDEN).toMatchObject({ status: 403, jsonRpcCode: -32021 });
  });

  it('renders an HTTP body a client can act on', () => {
    const error = new AgentError('SESSION_LIMIT_REACHED', 'this instance holds 20 of 20 sessions', {
      retryAfterSeconds: 5,
    });
    expect(error.status(404)).toBe(429);
    expect(error.toHttpBody(404)).toEqual({
      error: {
        code: 'SESSION_LIMIT_REACHED',
        message: 'this instance holds 20 of 20 sessions: back off and retry',
        status: 429,
        retryAfterSeconds: 5,
      },
    });
  });

  it('uses the policy status for expired sessions and the MCP code in JSON-RPC', () => {
    const error = new AgentError('SESSION_EXPIRED', 'session expired', { details: { sessionId: 'abc' } });
    expect(error.status(401)).toBe(401);
    expect(error.toJsonRpcError(404)).toEqual({
      code: -32001,
      message: 'session expired: start a new session',
      data: { code: 'SESSION_EXPIRED', status: 404, sessionId: 'abc' },
    });
  });
});
