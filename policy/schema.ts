/**
 * The policy file's structure, written once with zod: the TypeScript types, the structural checks
 * and the published JSON Schema (`schema/policy.schema.json`) all come from this file. Rules that
 * relate two fields live in `rules.ts`; turning zod's issues into our messages lives in
 * `validate.ts`.
 *
 * Each check carries only the rule text ("must be between 1 and 200"); the field path and the
 * offending value are prefixed when the issue is formatted, so every message reads
 * `sessionsPerInstance (300) must be between 1 and 200`.
 */
import { z } from 'zod';
import { typeRule, wholeNumber } from './fields.js';
import { HEADER_NAME_PATTERN, HEADER_NAME_RULE } from './header-name.js';
import { limitsSchema } from './limits.js';

export const ISOLATION_MODES = ['shared', 'session', 'request', 'tenant'] as const;
export type IsolationMode = (typeof ISOLATION_MODES)[number];

export const AFFINITY_TYPES = [
  'mcp-streamable-http',
  'mcp-sse',
  'header',
  'cookie',
  'copilot-jsonrpc',
  'none',
] as const;
export type AffinityType = (typeof AFFINITY_TYPES)[number];

export const EVICTION_POLICIES = ['reject', 'lru'] as const;
export type EvictionPolicy = (typeof EVICTION_POLICIES)[number];

/** The defaults of SPEC.md §4, in one place. */
export const DEFAULTS = {
  isolation: 'shared',
  sessionsPerInstance: 20,
  concurrencyPerInstance: 200,
  sessionLifetimeSeconds: 21600,
  sessionIdleTimeoutSeconds: 1800,
  minInstances: 1,
  maxInstances: 10,
  cookieName: 'x-fc-cookie-session-id',
  ssePath: '/sse',
  evictionPolicy: 'reject',
  drainTimeoutSeconds: 30,
  lockTtlSeconds: 30,
  lockWaitSeconds: 10,
  placementWaitSeconds: 5,
} as const;

/** Upper bounds that more than one rule refers to. */
export const LIMITS = {
  sessionsPerInstance: { min: 1, max: 200 },
  concurrencyPerInstance: { min: 1, max: 200 },
  sessionLifetimeSeconds: { min: 1, max: 2_592_000 },
  sessionIdleTimeoutSeconds: { min: 0, max: 2_592_000 },
  instances: { min: 1, max: 1000 },
  drainTimeoutSeconds: { min: 0, max: 3600 },
  lockTtlSeconds: { min: 1, max: 3600 },
  lockWaitSeconds: { min: 0, max: 3600 },
  placementWaitSeconds: { min: 0, max: 300 },
  perPrincipalSessions: { min: 1, max: 1_000_000 },
  instanceVcpu: { min: 0.001, max: 1024 },
} as const;

/** The status codes a client may be sent for an expired or unknown session. */
export const EXPIRED_STATUS_RANGE = { min: 400, max: 499 } as const;

/** Header names the agent itself owns or that would break HTTP if used to carry a session id. */
export const RESERVED_HEADER_NAMES = [
  'connection',
  'content-length',
  'content-type',
  'cookie',
  'host',
  'keep-alive',
  'mcp-protocol-version',
  'mcp-session-id',
  'proxy-authorization',
  'set-cookie',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
] as const;

// RFC 9110 §5.6.2 token: what a header field name is, and a cookie name too (RFC 6265 §4.1.1).
const HTTP_TOKEN = HEADER_NAME_PATTERN;

function aNumber(min: number, max: number) {
  const range = `must be between ${min} and ${max}`;
  return z
    .number({ error: typeRule('a number') })
    .min(min, { error: range })
    .max(max, { error: range });
}

function aBoolean() {
  return z.boolean({ error: typeRule('true or false') });
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  const list = values.map((v) => JSON.stringify(v)).join(', ');
  return z.enum(values, { error: typeRule(`one of ${list}`) });
}

const headerName = z
  .string({ error: typeRule('a string') })
  .min(1, { error: 'must not be empty', abort: true })
  .max(128, { error: 'must be at most 128 characters', abort: true })
  .regex(HTTP_TOKEN, { error: `must be ${HEADER_NAME_RULE}` })
  .refine((v) => !(RESERVED_HEADER_NAMES as readonly string[]).includes(v.toLowerCase()), {
    error: 'is reserved: the agent or HTTP itself uses that header',
  })
  .describe('The request header that carries the session id, e.g. "x-custom-affinity-header".');

const cookieName = z
  .string({ error: typeRule('a string') })
  .min(1, { error: 'must not be empty', abort: true })
  .max(128, { error: 'must be at most 128 characters', abort: true })
  .regex(HTTP_TOKEN, { error: "must be a valid cookie name (letters, digits and !#$%&'*+-.^_`|~)" })
  .describe('The cookie the agent inserts with Set-Cookie to carry the session id.');

const ssePath = z
  .string({ error: typeRule('a string') })
  .regex(/^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/, {
    error: 'must be an absolute URL path such as "/sse" (no query string, no spaces)',
  })
  .max(1024, { error: 'must be at most 1024 characters' })
  .describe('The path at which MCP clients open the legacy SSE stream.');

const affinityTypeList = AFFINITY_TYPES.map((v) => JSON.stringify(v)).join(', ');

/**
 * How a request is tied to its session (SPEC.md §3). A discriminated union, so each type accepts
 * only its own settings and the JSON Schema shows editors which settings go with which type.
 */
export const affinitySchema = z
  .discriminatedUnion(
    'type',
    [
      z.strictObject({
        type: z.literal('mcp-streamable-http'),
      }),
      z.strictObject({
        type: z.literal('mcp-sse'),
        ssePath: ssePath.default(DEFAULTS.ssePath),
      }),
      z.strictObject({
        type: z.literal('header'),
        headerName,
      }),
      z.strictObject({
        type: z.literal('cookie'),
        cookieName: cookieName.default(DEFAULTS.cookieName),
      }),
      z.strictObject({
        type: z.literal('copilot-jsonrpc'),
      }),
      z.strictObject({
        type: z.literal('none'),
      }),
    ],
    {
      error: (issue) =>
        issue.input === undefined
          ? 'is required'
          : typeof issue.input === 'object' && issue.input !== null && !Array.isArray(issue.input)
            ? `must have a "type" that is one of ${affinityTypeList}`
            : 'must be an object such as {"type": "mcp-streamable-http"}',
    },
  )
  .describe('How a request is tied to its session.');

export const collaborativeSchema = z
  .strictObject(
    {
      enabled: aBoolean()
        .default(true)
        .describe('Whether sessions may be shared by several clients, with writes serialized by a lock.'),
      lockTtlSeconds: wholeNumber(LIMITS.lockTtlSeconds.min, LIMITS.lockTtlSeconds.max)
        .default(DEFAULTS.lockTtlSeconds)
        .describe('How long a lock lives without renewal; the holder renews it while its request runs.'),
      lockWaitSeconds: aNumber(LIMITS.lockWaitSeconds.min, LIMITS.lockWaitSeconds.max)
        .default(DEFAULTS.lockWaitSeconds)
        .describe('How long a writer waits in line for a busy session before it is told the session is busy.'),
    },
    { error: typeRule('an object') },
  )
  .describe('Collaborative sessions: several users share one session; every write is serialized by a lock.');

/** The policy file as users write it. */
export const policyInputSchema = z
  .strictObject(
    {
      $schema: z
        .string({ error: typeRule('a string') })
        .optional()
        .describe('A JSON Schema reference for editors; ignored.'),
      isolation: oneOf(ISOLATION_MODES)
        .default(DEFAULTS.isolation)
        .describe(
          'How instances are isolated: shared (many sessions per instance), session (one session per instance), request (one request per instance), tenant (instances dedicated to one tenant).',
        ),
      affinity: affinitySchema,
      sessionsPerInstance: wholeNumber(LIMITS.sessionsPerInstance.min, LIMITS.sessionsPerInstance.max)
        .default(DEFAULTS.sessionsPerInstance)
        .describe('How many sessions one instance holds at once. Forced to 1 under session isolation.'),
      concurrencyPerInstance: wholeNumber(LIMITS.concurrencyPerInstance.min, LIMITS.concurrencyPerInstance.max)
        .default(DEFAULTS.concurrencyPerInstance)
        .describe(
          'How many requests one instance serves at once, summed over its sessions. Forced to 1 under request isolation.',
        ),
      sessionLifetimeSeconds: wholeNumber(LIMITS.sessionLifetimeSeconds.min, LIMITS.sessionLifetimeSeconds.max)
        .default(DEFAULTS.sessionLifetimeSeconds)
        .describe('Absolute lifetime of a session from its creation; past it the session is ended.'),
      sessionIdleTimeoutSeconds: wholeNumber(LIMITS.sessionIdleTimeoutSeconds.min, LIMITS.sessionIdleTimeoutSeconds.max)
        .default(DEFAULTS.sessionIdleTimeoutSeconds)
        .describe(
          'A session with no request (and no open stream) for this long is ended. 0 turns the idle timeout off.',
        ),
      minInstances: wholeNumber(LIMITS.instances.min, LIMITS.instances.max)
        .default(DEFAULTS.minInstances)
        .describe('The fewest instances the fleet runs.'),
      maxInstances: wholeNumber(LIMITS.instances.min, LIMITS.instances.max)
        .default(DEFAULTS.maxInstances)
        .describe('The most instances the fleet may scale to; when all are full, new sessions get 429.'),
      expiredSessionStatus: wholeNumber(EXPIRED_STATUS_RANGE.min, EXPIRED_STATUS_RANGE.max)
        .optional()
        .describe(
          'HTTP status for an expired or unknown session. Default: 404 for the MCP transports (clients re-initialize), 401 for header and cookie affinity.',
        ),
      evictionPolicy: oneOf(EVICTION_POLICIES)
        .default(DEFAULTS.evictionPolicy)
        .describe(
          'What a full instance does with a new session: reject it (429, or place it elsewhere in a fleet) or evict its least recently used session (whose state persists).',
        ),
      drainTimeoutSeconds: wholeNumber(LIMITS.drainTimeoutSeconds.min, LIMITS.drainTimeoutSeconds.max)
        .default(DEFAULTS.drainTimeoutSeconds)
        .describe('On shutdown, how long in-flight requests may take to finish before the agent exits.'),
      asyncInvocation: aBoolean()
        .default(false)
        .describe(
          'Whether the instances are invoked asynchronously (queued). Affinity and session isolation are not available then.',
        ),
      sharedSessionState: aBoolean()
        .default(false)
        .describe(
          'Whether session state lives on storage every instance mounts, so a session can be resumed on another instance when its owner dies.',
        ),
      recycleAfterSession: aBoolean()
        .default(false)
        .describe(
          'Session isolation only: end the instance after its one session ends, so the next session starts on a fresh instance.',
        ),
      copilotHostAccess: aBoolean()
        .optional()
        .describe(
          "Copilot front: forward the methods that reach the host the CLI runs on (shell, files, plugins, extensions, MCP servers, logs) even where that host holds other users' session state. Unset: only under session isolation with recycleAfterSession and no sharedSessionState. See docs/copilot-methods.md.",
        ),
      forwardBearerToken: aBoolean()
        .optional()
        .describe(
          "HTTP fronts in JWT mode (--jwt-issuer): pass the client's verified Authorization: Bearer token on to the upstream. Unset: the agent removes it, as MCP forbids token passthrough; set true only for an upstream that is itself a resource server for the same audience.",
        ),
      failOpen: aBoolean()
        .default(false)
        .describe('When Redis is unreachable: false rejects new sessions with 503; true places them on this instance.'),
      placementWaitSeconds: aNumber(LIMITS.placementWaitSeconds.min, LIMITS.placementWaitSeconds.max)
        .default(DEFAULTS.placementWaitSeconds)
        .describe(
          'When every instance is full but the fleet may still grow, how long a new session waits for capacity before 429.',
        ),
      sessionsPerPrincipal: wholeNumber(LIMITS.perPrincipalSessions.min, LIMITS.perPrincipalSessions.max)
        .optional()
        .describe('The most sessions one principal (user) may hold across the fleet. Unset: no limit.'),
      sessionsPerTenant: wholeNumber(LIMITS.perPrincipalSessions.min, LIMITS.perPrincipalSessions.max)
        .optional()
        .describe('The most sessions one tenant may hold across the fleet. Unset: no limit.'),
      instanceVcpu: aNumber(LIMITS.instanceVcpu.min, LIMITS.instanceVcpu.max)
        .optional()
        .describe(
          'vCPUs of one instance. The constructs fill it in from the container resources; session and request isolation need at least 2.',
        ),
      collaborative: collaborativeSchema.optional(),
      limits: limitsSchema,
    },
    { error: typeRule('a JSON object') },
  )
  .describe('sessionfleet policy: isolation, affinity, quotas and lifecycle of a fleet of session-holding servers.');

export type { LimitsSettings } from './limits.js';
/**
 * The policy as users write it, and its affinity: the TSDoc'd interfaces generated from this schema
 * (`policy-input.ts`, `npm run docs`), so editors show each field's description, default, range and
 * rules on hover; test/policy/policy-input.test.ts checks they equal the zod-inferred input types.
 */
export type { AffinityInput, CollaborativeInput, LimitsInput, PolicyInput } from './policy-input.js';

type ParsedPolicy = z.output<typeof policyInputSchema>;
export type Affinity = z.output<typeof affinitySchema>;
export type CollaborativeSettings = z.output<typeof collaborativeSchema>;

/** A validated policy with every default filled in: what the agent runs with. */
export type Policy = Omit<ParsedPolicy, '$schema' | 'expiredSessionStatus'> & {
  expiredSessionStatus: number;
};
