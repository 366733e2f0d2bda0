import { describe, expect, it } from 'vitest';
import { classify } from '../../../agent/http/affinity.js';
import {
  affinityKeyOf,
  hasModernEnvelope,
  isModernRequest,
  jsonRpcIdOf,
  unknownKeyBody,
} from '../../../agent/http/mcp2026.js';

const streamable = { affinity: { type: 'mcp-streamable-http' as const }, statelessUpstream: false };
const post = (headers: Record<string, string>) =>
  classify({ method: 'POST', path: '/mcp', query: '', headers, upgrade: false }, streamable);

describe('MCP 2026 requests as the agent classifies them', () => {
  it('takes a request for modern by its headers: a version that is not a 2025 date, or Mcp-Method without one', () => {
    expect(isModernRequest({ 'mcp-method': 'tools/list' })).toBe(true);
    expect(isModernRequest({ 'mcp-protocol-version': '2026-07-28' })).toBe(true);
    expect(isModernRequest({ 'mcp-protocol-version': 'v999.0.0' })).toBe(true);
    expect(isModernRequest({ 'mcp-protocol-version': '2025-11-25' })).toBe(false);
    expect(isModernRequest({ 'mcp-protocol-version': '2025-06-18', 'mcp-session-id': 's' })).toBe(false);
    // A dual-era client sends Mcp-Method on its 2025 requests too: the version header decides.
    expect(isModernRequest({ 'mcp-protocol-version': '2025-11-25', 'mcp-method': 'notifications/initialized' })).toBe(
      false,
    );
    expect(isModernRequest({})).toBe(false);
  });

  it('never asks a modern request for a session id, and ignores a stray one', () => {
    expect(post({ 'mcp-protocol-version': 'v999.0.0' })).toEqual({ kind: 'stateless' });
    expect(post({ 'mcp-protocol-version': '2026-07-28', 'mcp-session-id': 'stray' })).toEqual({ kind: 'stateless' });
    // 2025 traffic is unchanged.
    expect(post({ 'mcp-protocol-version': '2025-11-25', 'mcp-session-id': 'abc' })).toEqual({
      kind: 'session',
      id: 'abc',
      whenMissing: 'reject',
    });
    expect(post({})).toEqual({ kind: 'mcp-sessionless-post' });
  });

  it('routes tasks/get|update|cancel by the task id in Mcp-Name, and a handle by the policy header', () => {
    for (const method of ['tasks/get', 'tasks/update', 'tasks/cancel']) {
      expect(post({ 'mcp-method': method, 'mcp-name': 't-1' })).toEqual({
        kind: 'keyed',
        ref: { kind: 'task', key: 't-1' },
      });
    }
    expect(post({ 'mcp-method': 'tools/call', 'mcp-name': 't-1' })).toEqual({ kind: 'stateless' });
    // Without a usable Mcp-Name the server answers the header–body mismatch itself.
    expect(post({ 'mcp-method': 'tasks/get' })).toEqual({ kind: 'stateless' });
    expect(affinityKeyOf({ 'mcp-method': 'tasks/get', 'mcp-name': 'a b' }, undefined)).toBeUndefined();
    expect(affinityKeyOf({ 'mcp-method': 'tools/call', 'mcp-param-db': 'h-9' }, 'mcp-param-db')).toEqual({
      kind: 'handle',
      key: 'h-9',
    });
    expect(affinityKeyOf({ 'mcp-method': 'tools/call' }, 'mcp-param-db')).toBeUndefined();
  });

  it('reads the modern envelope and the JSON-RPC id of a body', () => {
    const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' };
    expect(hasModernEnvelope(JSON.stringify({ id: 1, method: 'tools/list', params: { _meta: meta } }))).toBe(true);
    expect(hasModernEnvelope(JSON.stringify([{ method: 'x' }, { params: { _meta: meta } }]))).toBe(true);
    expect(hasModernEnvelope(JSON.stringify({ id: 1, method: 'tools/list', params: {} }))).toBe(false);
    expect(hasModernEnvelope('{"io.modelcontextprotocol/protocolVersion"')).toBe(false);
    expect(jsonRpcIdOf('{"id":"x-1"}')).toBe('x-1');
    expect(jsonRpcIdOf('{"id":4}')).toBe(4);
    expect(jsonRpcIdOf('nope')).toBeNull();
  });

  it('answers an unknown task as the Tasks extension does', () => {
    expect(JSON.parse(unknownKeyBody('task', 3))).toEqual({
      jsonrpc: '2.0',
      id: 3,
      error: { code: -32602, message: 'Failed to retrieve task: Task not found' },
    });
  });
});
