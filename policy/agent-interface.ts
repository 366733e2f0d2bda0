/**
 * The agent's interface: every name the agent answers to and the constructs (or an operator) rely
 * on — its executable, ports, HTTP paths on the admin port, flags and their environment variables,
 * the metric names an autoscaler reads, and where files are mounted. Both halves read the names
 * from here, so a rename is one edit that the compiler carries to both (SPEC.md §8).
 *
 * Plain data only: the constructs load it without Fastify or prom-client, the agent without cdktf.
 */

/**
 * The agent's executable on the agent image's PATH (the package's `bin`). Platforms that can only
 * replace an image's whole command line (Azure Container Instances) start the agent by this name.
 */
export const AGENT_EXECUTABLE = 'sessionfleet-agent';

/** Port clients (and peer agents) reach the agent on; the only port a fleet exposes. */
export const AGENT_CLIENT_PORT = 8080;
/** Health, metrics and admin API; never exposed outside the pod / container group. */
export const AGENT_ADMIN_PORT = 9090;

/** `--listen` when not given: every interface, so peers and the platform's proxy reach it. */
export const DEFAULT_LISTEN = `0.0.0.0:${AGENT_CLIENT_PORT}`;
/** `--admin-listen` when not given: loopback, since the admin API is not for the network. */
export const DEFAULT_ADMIN_LISTEN = `127.0.0.1:${AGENT_ADMIN_PORT}`;

/** HTTP paths on the admin port. */
export const AGENT_PATHS = {
  /** The app's liveness: its upstream answered recently (a grace period covers start-up). */
  health: '/healthz',
  /** The agent's own liveness: it answers while the agent runs, whatever the app does. */
  live: '/livez',
  /** The app's start-up: the app answered the agent's last probe (no grace period). */
  startup: '/startupz',
  /** Readiness for new sessions (SPEC §8): upstream answering, store reachable, a free slot, not draining. */
  ready: '/readyz',
  /**
   * The Service's readiness: the instance stays in rotation while it can serve or forward the
   * sessions it holds — false only while it drains, or, without a fleet, while its upstream does
   * not answer (docs/adr/0018). The constructs' readiness probes use it, never `/readyz`.
   */
  serving: '/readyz/serving',
  /** Prometheus text format. */
  metrics: '/metrics',
  /** The session admin API (behind `--admin-token`): `/admin/sessions`, `/admin/fleet/...`. */
  admin: '/admin',
} as const;

export const AGENT_HEALTH_PATH = AGENT_PATHS.health;
export const AGENT_READY_PATH = AGENT_PATHS.ready;
export const AGENT_SERVING_PATH = AGENT_PATHS.serving;
export const AGENT_METRICS_PATH = AGENT_PATHS.metrics;

/**
 * What one connection may cost the agent before and after it authenticates: the defaults of the
 * `--copilot-*` and `--http-*` limit flags. Sized for the construct's default agent memory limit
 * (256 MiB): the worst case before authentication is `maxUnauthenticated` x `handshakeFrameBytes`
 * (8 MiB), and no silent connection outlives its timeout (ADR 0017, docs/copilot.md, docs/http-front.md).
 */
export const AGENT_LIMIT_DEFAULTS = {
  copilot: {
    /** Largest frame a Copilot client may send until its `connect` succeeds (`connect` itself is < 1 KiB). */
    handshakeFrameBytes: 64 * 1024,
    /** Largest frame after `connect` (a `session.send` with attachments). */
    maxFrameBytes: 16 * 1024 * 1024,
    /** From the TCP accept to a successful `connect`. */
    handshakeTimeoutMs: 10_000,
    /** Connections open at once that have not completed `connect`. */
    maxUnauthenticated: 128,
  },
  http: {
    /** From the first byte of a request to the end of its header block (node:http `headersTimeout`). */
    headersTimeoutMs: 10_000,
    /** From the first byte of a request to the end of its body (node:http `requestTimeout`). */
    requestTimeoutMs: 60_000,
    /** Largest header block (node:http `maxHeaderSize`). */
    maxHeaderBytes: 16 * 1024,
    /** Largest request body. */
    maxBodyBytes: 16 * 1024 * 1024,
    /** Client connections open at once (node:net `maxConnections`); more are dropped at accept. */
    maxConnections: 4096,
    /**
     * A request body is read up to this many bytes before the request is admitted (takes a
     * concurrency slot and request budgets); a longer one is admitted there and streams the rest.
     * 0: bodies stream from the first byte, as before ADR 0023 (for request bodies that wait for
     * the response, duplex streaming).
     */
    bodyGateBytes: 32 * 1024,
    /** A body being received may stall at most this long, and its pace earns at most this much slack. */
    bodyIdleTimeoutMs: 10_000,
    /** A body being received must keep up this average rate (after `bodyIdleTimeoutMs` of slack). */
    bodyMinBytesPerSecond: 1024,
  },
} as const;

/**
 * Each flag of `sessionfleet-agent` (SPEC.md §8): its type and a one-line description for `--help`
 * and the README. The constructs build the agent's command line from these names.
 */
export const AGENT_FLAGS = {
  policy: { type: 'string', description: 'the policy file (JSON)' },
  upstream: {
    type: 'string',
    description: 'the instance this agent fronts: http://host:port, or tcp://host:port for copilot-jsonrpc',
  },
  listen: { type: 'string', description: `host:port where clients connect (default ${DEFAULT_LISTEN})` },
  'admin-listen': {
    type: 'string',
    description: `host:port for ${AGENT_PATHS.health}, ${AGENT_PATHS.ready}, ${AGENT_PATHS.metrics} and the admin API (default ${DEFAULT_ADMIN_LISTEN}); never the client port`,
  },
  redis: {
    type: 'string',
    description:
      'fleet coordination: redis:// or rediss:// (one server), redis-sentinel://host:port[,host:port…]/<primary name> (Sentinel), rediss-sentinel://…, redis-cluster://host:port[,host:port…] (Cluster), rediss-cluster://…; without it an embedded in-memory store serves one instance',
  },
  fleet: {
    type: 'string',
    description: "the fleet's name: agents with the same --redis and --fleet coordinate (default default)",
  },
  'fleet-key': {
    type: 'string',
    description:
      'HMAC key(s) signing owner hints in session ids, comma-separated, newest first; set it from a secret via the environment (default: a random key shared through Redis)',
  },
  'fleet-lease-ms': {
    type: 'string',
    description:
      "with --redis: how long an instance counts as alive after its last heartbeat (heartbeat every third of it); a dead owner's sessions move after this long, 1000-300000 (default 10000)",
  },
  'fleet-reconcile-ms': {
    type: 'string',
    description:
      'with --redis: at start, how long the agent may spend asking its upstream about the sessions the registry still gives this instance id (a restart): held ones are adopted, unknown ones ended (ADR 0022); 0 turns it off, 0-300000 (default 10000)',
  },
  'session-state-dir': {
    type: 'string',
    description:
      'shared session-state directory (e.g. ~/.copilot/session-state) whose stale session directories the agent cleans up; with --app-state-dir it is mounted into the agent only',
  },
  'app-state-dir': {
    type: 'string',
    description:
      "the app's private session-state directory (shared by agent and app only); with --session-state-dir the agent stages each session's state in when it is created or resumed here and writes it back, under the session's lock, when a turn ends and when it leaves (Copilot front; ADR 0019)",
  },
  'instance-id': { type: 'string', description: "this instance's id (default: the host name)" },
  advertise: {
    type: 'string',
    description: "the URL this instance's peers reach its client port at (default http://<listen>)",
  },
  principals: {
    type: 'string',
    description:
      'JSON file mapping each client token to a principal name, e.g. {"tok-a": "alice"}, or to a principal and its tenant, {"tok-a": {"principal": "alice", "tenant": "acme"}}',
  },
  'principal-header': {
    type: 'string',
    description: 'HTTP fronts: a trusted header, set by an authenticating proxy, that names the principal',
  },
  'jwt-issuer': {
    type: 'string',
    description:
      'HTTP and Copilot fronts: take the principal from a bearer JWT issued by this issuer (its exact iss URL); exclusive with --principal-header',
  },
  'jwt-audience': {
    type: 'string',
    description:
      "with --jwt-issuer (required): the aud every token must carry, this resource's own URL as clients reach it, e.g. https://mcp.example.com/mcp",
  },
  'jwks-url': {
    type: 'string',
    description:
      "with --jwt-issuer: the issuer's JWKS (default: jwks_uri from the issuer's /.well-known/oauth-authorization-server or openid-configuration)",
  },
  'jwt-principal-claim': {
    type: 'string',
    description: 'with --jwt-issuer: the claim naming the principal, qualified as <issuer>#<claim> (default sub)',
  },
  'jwt-tenant-claim': {
    type: 'string',
    description: "with --jwt-issuer: the claim naming the principal's tenant (default: --tenant)",
  },
  'trusted-proxies': {
    type: 'string',
    description:
      'HTTP fronts: comma-separated CIDRs of the authenticating proxy; a request carrying --principal-header from any other address is refused (default: any address)',
  },
  'tenant-header': {
    type: 'string',
    description:
      "HTTP fronts: a trusted header, set by an authenticating proxy, that names the principal's tenant (default: --tenant)",
  },
  tenant: {
    type: 'string',
    description:
      'the tenant this instance serves: the tenant of every principal without one of its own; required by isolation "tenant", which refuses every other tenant',
  },
  'upstream-token': {
    type: 'string',
    description: 'the token the agent presents to a Copilot CLI started with COPILOT_CONNECTION_TOKEN',
  },
  'admin-token': {
    type: 'string',
    description: 'bearer token required by the admin API (session inventory, terminate); health and metrics stay open',
  },
  'allowed-hosts': {
    type: 'string',
    description:
      'HTTP fronts: Host header values the agent serves, comma-separated (name[:port], *.domain, *); default: loopback names when --listen is loopback, else any',
  },
  'allowed-origins': {
    type: 'string',
    description:
      'HTTP fronts: browser origins allowed to call, comma-separated (scheme://host[:port], *); default: loopback origins when --listen is loopback, else any',
  },
  'copilot-handshake-timeout-ms': {
    type: 'string',
    description: `Copilot front: a client connection must complete connect within this many ms of opening, else it is closed (default ${AGENT_LIMIT_DEFAULTS.copilot.handshakeTimeoutMs})`,
  },
  'copilot-max-unauthenticated': {
    type: 'string',
    description: `Copilot front: connections open at once that have not completed connect; more are refused at once (default ${AGENT_LIMIT_DEFAULTS.copilot.maxUnauthenticated})`,
  },
  'copilot-handshake-frame-bytes': {
    type: 'string',
    description: `Copilot front: the largest frame a client may send before its connect succeeds (default ${AGENT_LIMIT_DEFAULTS.copilot.handshakeFrameBytes})`,
  },
  'copilot-max-frame-bytes': {
    type: 'string',
    description: `Copilot front: the largest frame an authenticated client may send (default ${AGENT_LIMIT_DEFAULTS.copilot.maxFrameBytes})`,
  },
  'http-headers-timeout-ms': {
    type: 'string',
    description: `HTTP fronts: a request's headers must arrive within this many ms, else 408 (default ${AGENT_LIMIT_DEFAULTS.http.headersTimeoutMs})`,
  },
  'http-request-timeout-ms': {
    type: 'string',
    description: `HTTP fronts: a request's headers and body must arrive within this many ms, else 408 (default ${AGENT_LIMIT_DEFAULTS.http.requestTimeoutMs})`,
  },
  'http-max-header-bytes': {
    type: 'string',
    description: `HTTP fronts: the largest request header block, else 431 (default ${AGENT_LIMIT_DEFAULTS.http.maxHeaderBytes})`,
  },
  'http-max-body-bytes': {
    type: 'string',
    description: `HTTP fronts: the largest request body, else 413 (default ${AGENT_LIMIT_DEFAULTS.http.maxBodyBytes})`,
  },
  'http-max-connections': {
    type: 'string',
    description: `HTTP fronts: client connections open at once; more are closed at accept (default ${AGENT_LIMIT_DEFAULTS.http.maxConnections})`,
  },
  'http-body-gate-bytes': {
    type: 'string',
    description: `HTTP fronts: read a request body up to this many bytes before it takes a concurrency slot; 0 streams bodies at once (default ${AGENT_LIMIT_DEFAULTS.http.bodyGateBytes})`,
  },
  'http-body-idle-timeout-ms': {
    type: 'string',
    description: `HTTP fronts: a request body may stall at most this many ms, else 408 (default ${AGENT_LIMIT_DEFAULTS.http.bodyIdleTimeoutMs})`,
  },
  'http-body-min-bytes-per-second': {
    type: 'string',
    description: `HTTP fronts: a request body must arrive at least this fast on average, after the idle timeout's slack, else 408 (default ${AGENT_LIMIT_DEFAULTS.http.bodyMinBytesPerSecond})`,
  },
  'health-path': { type: 'string', description: 'HTTP path the agent probes on the upstream (default: a TCP connect)' },
  'probe-interval-ms': { type: 'string', description: 'how often the upstream is probed (default 2000)' },
  'unhealthy-after-ms': {
    type: 'string',
    description: 'how long the upstream may be unresponsive before /healthz fails (default 30000)',
  },
  'log-level': {
    type: 'string',
    description: 'pino level: fatal, error, warn, info, debug, trace, silent (default info)',
  },
} as const;

export type AgentFlag = keyof typeof AGENT_FLAGS;

/** The environment variable a flag may also come from: `--admin-listen` → `SESSIONFLEET_ADMIN_LISTEN`. */
export function envName(flag: string): string {
  return `SESSIONFLEET_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/** `--<flag>` as it is written on a command line; typed, so a renamed flag fails to compile. */
export function flagArg(flag: AgentFlag): `--${AgentFlag}` {
  return `--${flag}`;
}

/**
 * The variables the constructs set for the agent: secrets (never on argv) and what the platform
 * knows only at run time (the pod's name and address).
 */
export const AGENT_ENV = {
  redis: envName('redis'),
  upstreamToken: envName('upstream-token'),
  adminToken: envName('admin-token'),
  instanceId: envName('instance-id'),
  advertise: envName('advertise'),
  /** The tenant an instance serves under tenant isolation (`--tenant`). */
  tenant: envName('tenant'),
  logLevel: envName('log-level'),
} as const satisfies Record<string, string>;

/**
 * Metric names other components depend on: the Kubernetes construct's HPA and the
 * prometheus-adapter rules in the README.
 */
/** Active sessions / sessionsPerInstance, 0..1: the HPA scales on its average over the pods. */
export const SESSION_UTILIZATION_METRIC = 'sessionfleet_session_utilization';
/** New sessions waiting for capacity anywhere in the fleet: the demand a scale-out would serve. */
export const PLACEMENT_DEMAND_METRIC = 'sessionfleet_placement_demand';

/** MCP 2026 requests by `Mcp-Method`, bounded `Mcp-Name` and result type (complete, input_required, task, error, none). */
export const MCP_REQUESTS_METRIC = 'sessionfleet_mcp_requests_total';
/** MCP 2026 request durations by `Mcp-Method` and bounded `Mcp-Name`. */
export const MCP_REQUEST_DURATION_METRIC = 'sessionfleet_mcp_request_duration_seconds';
/** Routing decisions for requests naming a task or handle: local, forwarded, unknown, refused. */
export const AFFINITY_KEY_DECISIONS_METRIC = 'sessionfleet_affinity_key_decisions_total';

/**
 * The Redis key prefix of a fleet's state: `sessionfleet:{<fleet>}:`. The braces are a Redis Cluster
 * hash tag, so one fleet's keys share a slot. The constructs name keys with it too (the scale list).
 */
export function fleetKeyPrefix(fleet: string): string {
  return `sessionfleet:{${fleet}}:`;
}

/**
 * A Redis list whose length is the fleet's session demand: sessions registered, slots reserved for
 * sessions being created, and new sessions waiting for capacity. The janitor leader keeps it current;
 * a KEDA `redis` scale rule (Azure Container Apps) reads its length, since KEDA's Redis scaler counts
 * list entries only. Key: `fleetKeyPrefix(fleet) + FLEET_SCALE_LIST_SUFFIX`.
 */
export const FLEET_SCALE_LIST_SUFFIX = 'scale:demand';

/** Connections and requests the agent refused for a limit of ADR 0017, by front and reason. */
export const CONNECTIONS_REFUSED_METRIC = 'sessionfleet_connections_refused_total';
/** Open streams (MCP 2026 `subscriptions/listen`, SSE GETs) an HTTP front holds now. */
export const OPEN_STREAMS_METRIC = 'sessionfleet_open_streams';
/** Requests refused for a `policy.limits` budget, by front and the limit's field name (ADR 0025). */
export const LIMIT_REFUSALS_METRIC = 'sessionfleet_limit_refusals_total';
/** Copilot client connections open now that have not completed `connect`. */
export const UNAUTHENTICATED_CONNECTIONS_METRIC = 'sessionfleet_copilot_unauthenticated_connections';
/** Bytes the Copilot front holds for its client connections now (partial frames and unsent output). */
export const CONNECTION_BUFFERED_BYTES_METRIC = 'sessionfleet_copilot_buffered_bytes';

/** Where the policy file is mounted in the agent container. */
export const POLICY_MOUNT_PATH = '/etc/sessionfleet';
export const POLICY_FILE_NAME = 'policy.json';
/** Where the principals file (token → principal) is mounted, from a Secret. */
export const PRINCIPALS_MOUNT_PATH = '/etc/sessionfleet-principals';
export const PRINCIPALS_FILE_NAME = 'principals.json';

/** Where the Copilot CLI keeps session state (SPEC.md §5); the default mount of session storage. */
export const DEFAULT_SESSION_STATE_PATH = '/root/.copilot/session-state';
