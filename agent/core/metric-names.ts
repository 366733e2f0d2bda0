/**
 * Metric names other components depend on (the Kubernetes construct's HPA, prometheus-adapter
 * rules in the README). Kept apart from `metrics.ts` so the constructs can import them without
 * loading prom-client.
 */
/** Active sessions / sessionsPerInstance, 0..1: the HPA scales on its average over the pods. */
export const SESSION_UTILIZATION_METRIC = 'sessionfleet_session_utilization';
/** New sessions waiting for capacity anywhere in the fleet: the demand a scale-out would serve. */
export const PLACEMENT_DEMAND_METRIC = 'sessionfleet_placement_demand';
