import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import {
  type ClassifyContext,
  classify,
  containsInitialize,
  findCookie,
  isValidSessionId,
  type Route,
  sessionIdFromEndpoint,
  sessionIdParam,
} from '../../../agent/http/affinity.js';

function request(method: string, url: string, headers: IncomingHttpHeaders = {}, upgrade = false) {
  const q = url.indexOf('?');
  return {
    method,
    path: q < 0 ? url : url.slice(0, q),
    query: q < 0 ? '' : url.slice(q + 1),
    headers,
    upgrade,
  };
}

const streamable: ClassifyContext = { affinity: { type: 'mcp-streamable-http' }, statelessUpstream: false };
const sse: ClassifyContext = { affinity: { type: 'mcp-sse', ssePath: '/sse' }, statelessUpstream: false };
const header: ClassifyContext = { affinity: { type: 'header', headerName: 'X-Affinity' }, statelessUpstream: false };
const cookie: ClassifyContext = { affinity: { type: 'cookie', cookieName: 'sid' }, statelessUpstream: false };

/** The rejection as an MCP client receives it (JSON-RPC) and as an HTTP client does. */
function rejection(route: Route) {
  if (route.kind !== 'reject') throw new Error(`expected a rejection, got ${route.kind}`);
  return {
    status: route.error.status(404),
    jsonRpc: route.error.toJsonRpcError(404),
    http: route.error.toHttpBody(404),
    clearCookie: route.clearCookie ?? false,
  };
}

describe('session ids', () => {
  it('are 1-128 visible ASCII characters', () => {
    expect(isValidSessionId('a')).toBe(true);
    expect(isValidSessionId('!~'.repeat(64))).toBe(true);
    expect(isValidSessionId('a'.repeat(129))).toBe(false);
    expect(isValidSessionId('')).toBe(false);
    expect(isValidSessionId('a b')).toBe(false);
    expect(isValidSessionId('a\tb')).toBe(false);
    expect(isValidSessionId('é')).toBe(false);
    expect(isValidSessionId(undefined)).toBe(false);
  });
});

describe('mcp-streamable-http', () => {
  it('routes a request with Mcp-Session-Id to that session, which must exist', () => {
    for (const method of ['GET', 'POST', 'DELETE']) {
      expect(classify(request(method, '/mcp', { 'mcp-session-id': 'abc-123' }), streamable)).toEqual({
        kind: 'session',
        id: 'abc-123',
        whenMissing: 'reject',
      });
    }
  });

  it('sends a session-less POST to the initialize check, and refuses other session-less MCP calls', () => {
    expect(classify(request('POST', '/mcp'), streamable)).toEqual({ kind: 'mcp-sessionless-post' });
    expect(rejection(classify(request('DELETE', '/mcp'), streamable))).toEqual({
      status: 400,
      jsonRpc: {
        code: -32600,
        message:
          'the Mcp-Session-Id header is required on every request but initialize: send the session id you were given',
        data: { code: 'SESSION_ID_REQUIRED', status: 400, header: 'mcp-session-id' },
      },
      http: {
        error: {
          code: 'SESSION_ID_REQUIRED',
          message:
            'the Mcp-Session-Id header is required on every request but initialize: send the session id you were given',
          status: 400,
          header: 'mcp-session-id',
        },
      },
      clearCookie: false,
    });
  });

  it('refuses an invalid Mcp-Session-Id with 400', () => {
    expect(rejection(classify(request('POST', '/mcp', { 'mcp-session-id': 'a b' }), streamable)).jsonRpc).toEqual({
      code: -32602,
      message: 'the Mcp-Session-Id header is not a valid session id: use 1-128 visible ASCII characters',
      data: { code: 'INVALID_SESSION_ID', status: 400, header: 'mcp-session-id' },
    });
  });

  it('refuses the legacy SSE transport, saying which transport is configured', () => {
    const get = rejection(classify(request('GET', '/sse', { accept: 'text/event-stream' }), streamable));
    expect(get.status).toBe(400);
    expect(get.jsonRpc).toEqual({
      code: -32600,
      message:
        'this agent is configured for MCP Streamable HTTP (affinity.type "mcp-streamable-http"), and this GET without Mcp-Session-Id opens a legacy SSE stream; POST an initialize instead: use the transport the agent is configured for',
      data: { code: 'WRONG_TRANSPORT', status: 400, configured: 'mcp-streamable-http' },
    });
    const post = rejection(classify(request('POST', '/messages?sessionId=abc'), streamable));
    expect(post.jsonRpc.data).toEqual({ code: 'WRONG_TRANSPORT', status: 400, configured: 'mcp-streamable-http' });
    expect(post.jsonRpc.message).toContain('legacy SSE transport request (?sessionId=)');
    expect(rejection(classify(request('GET', '/ws', {}, true), streamable)).jsonRpc.data.code).toBe('WRONG_TRANSPORT');
  });

  it('lets plain GETs (discovery), OPTIONS and HEAD pass without a session', () => {
    for (const [method, url] of [
      ['GET', '/.well-known/oauth-protected-resource'],
      ['OPTIONS', '/mcp'],
      ['HEAD', '/mcp'],
    ] as const) {
      expect(classify(request(method, url), streamable)).toEqual({ kind: 'stateless' });
    }
  });

  it('passes everything without affinity once the upstream showed it keeps no sessions, or the client speaks the session-less revision', () => {
    const stateless = { ...streamable, statelessUpstream: true };
    expect(classify(request('POST', '/mcp'), stateless)).toEqual({ kind: 'stateless' });
    expect(classify(request('GET', '/mcp', { accept: 'text/event-stream' }), stateless)).toEqual({ kind: 'stateless' });
    expect(classify(request('POST', '/mcp', { 'mcp-protocol-version': '2026-07-28' }), streamable)).toEqual({
      kind: 'stateless',
    });
    expect(classify(request('POST', '/mcp', { 'mcp-protocol-version': '2025-06-18' }), streamable)).toEqual({
      kind: 'mcp-sessionless-post',
    });
  });
});

describe('mcp-sse', () => {
  it('opens a session with GET on the SSE path and routes ?sessionId= POSTs', () => {
    expect(classify(request('GET', '/sse'), sse)).toEqual({ kind: 'sse-open' });
    expect(classify(request('GET', '/sse?x=1'), sse)).toEqual({ kind: 'sse-open' });
    expect(classify(request('POST', '/messages?sessionId=s-1'), sse)).toEqual({
      kind: 'session',
      id: 's-1',
      whenMissing: 'reject',
    });
  });

  it('refuses Streamable HTTP calls, saying which transport is configured', () => {
    const initialize = rejection(classify(request('POST', '/mcp'), sse));
    expect(initialize.status).toBe(400);
    expect(initialize.jsonRpc).toEqual({
      code: -32600,
      message:
        'this agent is configured for MCP over SSE (affinity.type "mcp-sse", stream at /sse); this POST carries no sessionId: it looks like Streamable HTTP. Open GET /sse and POST to the endpoint it announces: use the transport the agent is configured for',
      data: { code: 'WRONG_TRANSPORT', status: 400, configured: 'mcp-sse', ssePath: '/sse' },
    });
    expect(rejection(classify(request('GET', '/mcp', { 'mcp-session-id': 'x' }), sse)).jsonRpc.data.code).toBe(
      'WRONG_TRANSPORT',
    );
    expect(rejection(classify(request('POST', '/sse'), sse)).jsonRpc.message).toContain(
      'open the stream with GET /sse',
    );
  });

  it('refuses a repeated or invalid sessionId', () => {
    expect(rejection(classify(request('POST', '/messages?sessionId=a&sessionId=b'), sse)).jsonRpc.data.code).toBe(
      'INVALID_SESSION_ID',
    );
    expect(rejection(classify(request('POST', '/messages?sessionId='), sse)).jsonRpc.data).toEqual({
      code: 'INVALID_SESSION_ID',
      status: 400,
      parameter: 'sessionId',
    });
  });
});

describe('header affinity', () => {
  it('takes the id from the configured header; an unseen id starts a session', () => {
    expect(classify(request('GET', '/', { 'x-affinity': 'user-7' }), header)).toEqual({
      kind: 'session',
      id: 'user-7',
      whenMissing: 'create',
    });
  });

  it('refuses a missing or invalid value with 400 and a body naming the header', () => {
    expect(rejection(classify(request('GET', '/'), header))).toEqual({
      status: 400,
      jsonRpc: expect.anything(),
      http: {
        error: {
          code: 'SESSION_ID_REQUIRED',
          message: 'the X-Affinity header is required: send the session id you were given',
          status: 400,
          header: 'X-Affinity',
        },
      },
      clearCookie: false,
    });
    for (const bad of ['', 'a b', 'x'.repeat(129), 'a, b', 'ü']) {
      expect(rejection(classify(request('GET', '/', { 'x-affinity': bad }), header)).http).toEqual({
        error: {
          code: 'INVALID_SESSION_ID',
          message: 'the X-Affinity header is not a valid session id: use 1-128 visible ASCII characters',
          status: 400,
          header: 'X-Affinity',
        },
      });
    }
  });
});

describe('cookie affinity', () => {
  it('mints a session without the cookie and routes with it', () => {
    expect(classify(request('GET', '/'), cookie)).toEqual({ kind: 'mint-cookie' });
    expect(classify(request('GET', '/', { cookie: 'other=1' }), cookie)).toEqual({ kind: 'mint-cookie' });
    expect(classify(request('GET', '/', { cookie: 'a=1; sid=abc_-9; b=2' }), cookie)).toEqual({
      kind: 'session',
      id: 'abc_-9',
      whenMissing: 'reject-cookie',
    });
    expect(classify(request('GET', '/', { cookie: 'sid="quoted"' }), cookie)).toEqual({
      kind: 'session',
      id: 'quoted',
      whenMissing: 'reject-cookie',
    });
  });

  it('refuses a malformed or repeated cookie with 401 and clears it', () => {
    expect(rejection(classify(request('GET', '/', { cookie: 'sid=a; sid=b' }), cookie))).toEqual({
      status: 401,
      jsonRpc: expect.anything(),
      http: {
        error: {
          code: 'INVALID_COOKIE',
          message: 'the cookie sid is sent 2 times: retry without the cookie to get a new one',
          status: 401,
          cookie: 'sid',
        },
      },
      clearCookie: true,
    });
    expect(rejection(classify(request('GET', '/', { cookie: 'sid=a\\b' }), cookie)).http.error).toMatchObject({
      code: 'INVALID_COOKIE',
      message: 'the cookie sid is malformed: retry without the cookie to get a new one',
    });
  });

  it('parses cookies strictly by name', () => {
    expect(findCookie('xsid=1; sidx=2', 'sid')).toEqual({ state: 'absent' });
    expect(findCookie(' sid = v ', 'sid')).toEqual({ state: 'present', value: 'v' });
    expect(findCookie('sid=', 'sid')).toEqual({ state: 'invalid', why: 'the cookie sid is malformed' });
  });
});

describe('none', () => {
  it('passes every request without a session', () => {
    expect(classify(request('POST', '/x'), { affinity: { type: 'none' }, statelessUpstream: false })).toEqual({
      kind: 'stateless',
    });
  });
});

describe('body and stream helpers', () => {
  it('recognizes an initialize request, alone or in a batch', () => {
    expect(containsInitialize('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}')).toBe(true);
    expect(containsInitialize('[{"jsonrpc":"2.0","method":"notifications/x"},{"id":2,"method":"initialize"}]')).toBe(
      true,
    );
    expect(containsInitialize('{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"q":"initialize"}}')).toBe(
      false,
    );
    expect(containsInitialize('{"method":"initialize"')).toBe(false);
    expect(containsInitialize('null')).toBe(false);
  });

  it('reads the session id of an endpoint event, relative or absolute', () => {
    expect(sessionIdFromEndpoint('/messages?sessionId=abc')).toBe('abc');
    expect(sessionIdFromEndpoint('http://127.0.0.1:9/messages?x=1&sessionId=a%2Fb')).toBe('a/b');
    expect(sessionIdFromEndpoint('/messages')).toBeUndefined();
    expect(sessionIdFromEndpoint('/messages?sessionId=a&sessionId=b')).toBeUndefined();
    expect(sessionIdFromEndpoint('/messages?sessionId=a%20b')).toBeUndefined();
  });

  it('reads the sessionId query parameter', () => {
    expect(sessionIdParam('')).toBeUndefined();
    expect(sessionIdParam('a=1')).toBeUndefined();
    expect(sessionIdParam('sessionId=x%3Dy')).toBe('x=y');
    expect(sessionIdParam('sessionId=1&sessionId=2')).toBeNull();
  });
});
