import { describe, expect, it } from 'vitest';
import { AgentError, ERRORS } from '../../../agent/core/errors.js';

describe('the error catalogue', () => {
  it('has unique codes and a status for each', () => {
    for (const [key, def] of Object.entries(ERRORS)) {
      expect(def.code).toBe(key);
      expect(def.status === 'expired' || (def.status >= 400 && def.status < 600)).toBe(true);
    }
  });

  it("gives each of the agent's own refusals a JSON-RPC code of its own, in -31000..-31099", () => {
    const own = Object.values(ERRORS).filter((d) => d.jsonRpcCode <= -31000 && d.jsonRpcCode >= -31099);
    expect(new Set(own.map((d) => d.jsonRpcCode)).size).toBe(own.length);
    expect(ERRORS.TENANT_FORBIDDEN).toMatchObject({ status: 403, jsonRpcCode: -31021 });
  });

  it('never uses a code JSON-RPC reserves but those whose meaning the peers share (MCP 2026 reserves -32020..-32099)', () => {
    const shared = new Set([-32001, -32600, -32601, -32602, -32603]);
    const reserved = Object.values(ERRORS).filter(
      (d) => d.jsonRpcCode >= -32768 && d.jsonRpcCode <= -32000 && !shared.has(d.jsonRpcCode),
    );
    expect(reserved).toEqual([]);
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
