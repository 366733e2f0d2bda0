/**
 * The agent's Prometheus metrics (prom-client), on a registry of its own so that tests and
 * several agents in one process never share counters. Names are part of the public interface:
 * the Kubernetes construct's HPA scales on `sessionfleet_session_utilization`.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import {
  AFFINITY_KEY_DECISIONS_METRIC,
  CONNECTION_BUFFERED_BYTES_METRIC,
  CONNECTIONS_REFUSED_METRIC,
  LIMIT_REFUSALS_METRIC,
  MCP_REQUEST_DURATION_METRIC,
  MCP_REQUESTS_METRIC,
  OPEN_STREAMS_METRIC,
  PLACEMENT_DEMAND_METRIC,
  SESSION_UTILIZATION_METRIC,
  UNAUTHENTICATED_CONNECTIONS_METRIC,
} from '../../policy/agent-interface.js';

export interface AgentMetrics {
  readonly registry: Registry;
  readonly activeSessions: Gauge;
  readonly sessionUtilization: Gauge;
  readonly sessionsCreated: Counter<'front'>;
  readonly sessionsEnded: Counter<'reason'>;
  readonly inFlight: Gauge;
  /** Open streams the HTTP front holds (set at each scrape). */
  readonly openStreams: Gauge;
  readonly requestDuration: Histogram<'front' | 'outcome'>;
  readonly rejections: Counter<'code'>;
  readonly upstreamUp: Gauge;
  readonly draining: Gauge;
  readonly placementDemand: Gauge;
  /** Connections and requests refused for a limit (ADR 0017), by front and reason. */
  readonly connectionsRefused: Counter<'front' | 'reason'>;
  /** Requests refused for a `policy.limits` budget, by front and limit field (both fronts, ADR 0025). */
  readonly limitRefusals: Counter<'front' | 'limit'>;
  readonly unauthenticatedConnections: Gauge;
  /** Read at each scrape from the sources the Copilot front registers (one per open connection set). */
  readonly bufferedBytes: Gauge;
  readonly bufferedBytesSources: Set<() => number>;
  readonly mcpRequests: Counter<'method' | 'name' | 'result'>;
  readonly mcpRequestDuration: Histogram<'method' | 'name'>;
  readonly affinityKeyDecisions: Counter<'kind' | 'decision'>;
}

export function createMetrics(options: { instanceId: string; defaultMetrics?: boolean }): AgentMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ instance_id: options.instanceId });
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'sessionfleet_agent_' });
  const registers = [registry];
  const bufferedBytesSources = new Set<() => number>();
  return {
    registry,
    activeSessions: new Gauge({
      name: 'sessionfleet_active_sessions',
      help: 'Sessions held by this instance now.',
      registers,
    }),
    sessionUtilization: new Gauge({
      name: SESSION_UTILIZATION_METRIC,
      help: 'Active sessions divided by sessionsPerInstance (0..1); the HPA scales on its average.',
      registers,
    }),
    sessionsCreated: new Counter({
      name: 'sessionfleet_sessions_created_total',
      help: 'Sessions created on this instance.',
      labelNames: ['front'] as const,
      registers,
    }),
    sessionsEnded: new Counter({
      name: 'sessionfleet_sessions_ended_total',
      help: 'Sessions ended on this instance, by reason.',
      labelNames: ['reason'] as const,
      registers,
    }),
    inFlight: new Gauge({
      name: 'sessionfleet_inflight_requests',
      help: 'Requests in flight through the agent.',
      registers,
    }),
    openStreams: new Gauge({
      name: OPEN_STREAMS_METRIC,
      help: 'Open streams the HTTP front holds now (MCP 2026 subscriptions/listen, SSE GETs): each has a stream place, not a concurrency slot.',
      registers,
    }),
    requestDuration: new Histogram({
      name: 'sessionfleet_request_duration_seconds',
      help: 'Time from request to the end of the response, through the agent.',
      labelNames: ['front', 'outcome'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    rejections: new Counter({
      name: 'sessionfleet_rejections_total',
      help: 'Requests the agent rejected, by error code.',
      labelNames: ['code'] as const,
      registers,
    }),
    upstreamUp: new Gauge({
      name: 'sessionfleet_upstream_up',
      help: '1 when the last upstream probe succeeded.',
      registers,
    }),
    draining: new Gauge({ name: 'sessionfleet_draining', help: '1 while the agent drains before exit.', registers }),
    placementDemand: new Gauge({
      name: PLACEMENT_DEMAND_METRIC,
      help: 'New sessions waiting for capacity anywhere in the fleet (the autoscaler reads it).',
      registers,
    }),
    connectionsRefused: new Counter({
      name: CONNECTIONS_REFUSED_METRIC,
      help: 'Connections and requests refused for a size, time or count limit (handshake-timeout, unauthenticated-limit, frame-too-large, malformed-frame, headers-timeout, request-timeout, headers-too-large, body-too-large, connection-limit, connect-method, bad-request).',
      labelNames: ['front', 'reason'] as const,
      registers,
    }),
    limitRefusals: new Counter({
      name: LIMIT_REFUSALS_METRIC,
      help: 'Requests refused for a policy.limits budget, by front (http, copilot) and limit (requestsPerPrincipal, requestsPerTenant, streamsPerPrincipal, streamsPerTenant, tasksPerPrincipal, tasksPerTenant, toolConcurrency).',
      labelNames: ['front', 'limit'] as const,
      registers,
    }),
    unauthenticatedConnections: new Gauge({
      name: UNAUTHENTICATED_CONNECTIONS_METRIC,
      help: 'Copilot client connections open now that have not completed connect.',
      registers,
    }),
    bufferedBytes: new Gauge({
      name: CONNECTION_BUFFERED_BYTES_METRIC,
      help: 'Bytes the Copilot front holds for its client connections now: partial frames read and output not yet sent.',
      registers,
      collect() {
        let total = 0;
        for (const source of bufferedBytesSources) total += source();
        this.set(total);
      },
    }),
    bufferedBytesSources,
    mcpRequests: new Counter({
      name: MCP_REQUESTS_METRIC,
      help: 'MCP 2026 requests by Mcp-Method, Mcp-Name (the first mcpMetricNameLimit names, then "other"; never a task id) and result type.',
      labelNames: ['method', 'name', 'result'] as const,
      registers,
    }),
    mcpRequestDuration: new Histogram({
      name: MCP_REQUEST_DURATION_METRIC,
      help: 'Time from an MCP 2026 request to the end of its response, by Mcp-Method and bounded Mcp-Name.',
      labelNames: ['method', 'name'] as const,
      buckets: [0.005, 0.025, 0.1, 0.5, 1, 5, 30],
      registers,
    }),
    affinityKeyDecisions: new Counter({
      name: AFFINITY_KEY_DECISIONS_METRIC,
      help: 'Requests naming a task or handle, by where the routing core sent them: local, forwarded, unknown, refused.',
      labelNames: ['kind', 'decision'] as const,
      registers,
    }),
  };
}
