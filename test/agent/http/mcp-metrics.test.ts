import { describe, expect, it } from 'vitest';
import { McpMetricLabels } from '../../../agent/http/mcp-metrics.js';

const modern = (method: string | undefined, name?: string) => ({
  'mcp-protocol-version': '2026-07-28',
  ...(method ? { 'mcp-method': method } : {}),
  ...(name ? { 'mcp-name': name } : {}),
});

describe('McpMetricLabels', () => {
  it('labels the first names seen, then "other"; never a task id; unknown methods bounded', () => {
    const labels = new McpMetricLabels(2);
    expect(labels.of(modern('tools/call', 'a'))).toEqual({ method: 'tools/call', name: 'a' });
    expect(labels.of(modern('prompts/get', 'b'))).toEqual({ method: 'prompts/get', name: 'b' });
    expect(labels.of(modern('tools/call', 'c'))).toEqual({ method: 'tools/call', name: 'other' });
    expect(labels.of(modern('tools/call', 'a'))).toEqual({ method: 'tools/call', name: 'a' });
    expect(labels.of(modern('tasks/get', 'task-123'))).toEqual({ method: 'tasks/get', name: '' });
    expect(labels.of(modern('x/made-up', 'z'))).toEqual({ method: 'other', name: '' });
    expect(labels.of(modern('notifications/whatever'))).toEqual({ method: 'notifications/other', name: '' });
    expect(labels.of(modern(undefined))).toEqual({ method: 'none', name: '' });
  });

  it('leaves 2025 traffic out', () => {
    expect(new McpMetricLabels().of({ 'mcp-protocol-version': '2025-11-25', 'mcp-session-id': 's' })).toBeUndefined();
  });
});
