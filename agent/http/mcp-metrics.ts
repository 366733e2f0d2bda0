/**
 * Labels for the MCP 2026 metrics, with bounded cardinality: a client chooses its `Mcp-Method` and
 * `Mcp-Name` freely, and every distinct label value is a series Prometheus keeps.
 * - method: the methods of the 2026-07-28 revision and the Tasks extension by name, any other
 *   request `other`, any other notification `notifications/other`;
 * - name: the first `limit` distinct names seen (policy `mcpMetricNameLimit`, default 20), then
 *   `other`; empty for the task methods (a task id is never a label) and methods without a name.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { isModernRequest, TASK_METHODS } from './mcp2026.js';

const METHODS: ReadonlySet<string> = new Set([
  'server/discover',
  'ping',
  'tools/list',
  'tools/call',
  'resources/list',
  'resources/read',
  'resources/templates/list',
  'prompts/list',
  'prompts/get',
  'completion/complete',
  'logging/setLevel',
  'subscriptions/listen',
  'tasks/get',
  'tasks/update',
  'tasks/cancel',
]);
/** A name worth a label: visible ASCII, at most 128 characters. */
const NAME = /^[\x21-\x7e]{1,128}$/;
export const DEFAULT_METRIC_NAME_LIMIT = 20;

export interface McpLabels {
  readonly method: string;
  readonly name: string;
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export class McpMetricLabels {
  private readonly names = new Set<string>();

  constructor(private readonly limit: number = DEFAULT_METRIC_NAME_LIMIT) {}

  /** The labels of a modern request; undefined for 2025 traffic. */
  of(headers: IncomingHttpHeaders): McpLabels | undefined {
    if (!isModernRequest(headers)) return undefined;
    const given = one(headers['mcp-method']);
    const method =
      given === undefined
        ? 'none'
        : METHODS.has(given)
          ? given
          : given.startsWith('notifications/')
            ? 'notifications/other'
            : 'other';
    const raw = one(headers['mcp-name']);
    if (raw === undefined || method === 'other' || TASK_METHODS.has(method)) return { method, name: '' };
    return { method, name: this.bounded(raw) };
  }

  private bounded(name: string): string {
    if (this.names.has(name)) return name;
    if (this.names.size >= this.limit || !NAME.test(name)) return 'other';
    this.names.add(name);
    return name;
  }
}
