/**
 * `limits`: what one principal, one tenant, one tool and one instance may hold at once beyond
 * sessions — requests in flight, live MCP tasks, open streams — so the rules mean something for
 * MCP 2026-07-28 traffic, which has no sessions (docs/isolation.md, ADR 0015). A session's
 * requests and a stateless request draw on the same budget. The Copilot front applies the
 * request limits and eviction; streams, tasks and tools are HTTP-front limits (ADR 0025). Every field but the two with a
 * default is unset (no limit) unless the policy names it.
 */
import { z } from 'zod';
import { typeRule, wholeNumber } from './fields.js';

export const LIMIT_DEFAULTS = {
  streamsPerInstance: 100,
  evictIdleAfterSeconds: 120,
} as const;

export const LIMIT_RANGES = {
  streamsPerInstance: { min: 1, max: 10_000 },
  perCaller: { min: 1, max: 1_000_000 },
  toolConcurrency: { min: 1, max: 10_000 },
  evictIdleAfterSeconds: { min: 0, max: 2_592_000 },
} as const;

/** `<Mcp-Method> <Mcp-Name>`: a method (no spaces), one space, the tool name, resource URI or prompt name. */
const TOOL_KEY = /^[A-Za-z][A-Za-z0-9_/.-]{0,63} \S.{0,255}$/;

function perCaller(what: string) {
  const { min, max } = LIMIT_RANGES.perCaller;
  return wholeNumber(min, max).optional().describe(`${what} Unset: no limit.`);
}

export const limitsSchema = z
  .strictObject(
    {
      streamsPerInstance: wholeNumber(LIMIT_RANGES.streamsPerInstance.min, LIMIT_RANGES.streamsPerInstance.max)
        .default(LIMIT_DEFAULTS.streamsPerInstance)
        .describe(
          'How many long-lived streams (an MCP 2026 subscriptions/listen, a 2025 GET stream, a legacy SSE stream) one instance keeps open at once. Once streaming they hold no concurrencyPerInstance slot: they carry no work. HTTP front only: a Copilot connection is not a stream.',
        ),
      requestsPerPrincipal: perCaller(
        'The most requests one principal may have in flight at once, sessions and stateless requests together (fleet-wide with --redis). Copilot front: the JSON-RPC calls of all its connections, session and server-wide calls alike, a session.send counting until its turn ends.',
      ),
      requestsPerTenant: perCaller(
        'The most requests one tenant may have in flight at once (fleet-wide with --redis), on both fronts.',
      ),
      tasksPerPrincipal: perCaller(
        'The most live MCP tasks one principal may hold: counted when a tools/call returns a task, released at a terminal status or its ttlMs. HTTP front only (the Copilot CLI has no MCP tasks).',
      ),
      tasksPerTenant: perCaller('The most live MCP tasks one tenant may hold. HTTP front only.'),
      streamsPerPrincipal: perCaller(
        'The most open streams (subscriptions/listen, GET streams) one principal may hold. HTTP front only.',
      ),
      streamsPerTenant: perCaller('The most open streams one tenant may hold. HTTP front only.'),
      toolConcurrency: z
        .record(
          z.string().regex(TOOL_KEY, {
            error: 'must be "<Mcp-Method> <Mcp-Name>", e.g. "tools/call search"',
          }),
          wholeNumber(LIMIT_RANGES.toolConcurrency.min, LIMIT_RANGES.toolConcurrency.max),
          { error: typeRule('an object such as {"tools/call search": 2}') },
        )
        .optional()
        .describe(
          'Per-tool concurrency on one instance, keyed "<Mcp-Method> <Mcp-Name>" (the MCP 2026 request headers), e.g. {"tools/call search": 2}. Unset: no per-tool limit. HTTP front only.',
        ),
      evictIdleAfterSeconds: wholeNumber(LIMIT_RANGES.evictIdleAfterSeconds.min, LIMIT_RANGES.evictIdleAfterSeconds.max)
        .default(LIMIT_DEFAULTS.evictIdleAfterSeconds)
        .describe(
          'When an instance is full, a new session evicts the least recently used session that has had no request and no open stream for at least this long (a client that never ended it); its upstream state is deleted (Copilot: detached, its saved state stays resumable). 0: never (a full instance answers 429 until idle expiry). evictionPolicy "lru" evicts any idle session.',
        ),
    },
    { error: typeRule('an object') },
  )
  .prefault({})
  .describe('Limits per principal, tenant, tool and instance beyond sessions: requests, MCP tasks, streams.');

export type LimitsSettings = z.output<typeof limitsSchema>;

/** The key of `toolConcurrency` for a request's `Mcp-Method` and `Mcp-Name` headers. */
export function toolKey(method: string, name: string): string {
  return `${method} ${name}`;
}
