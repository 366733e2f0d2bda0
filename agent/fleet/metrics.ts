/**
 * The fleet layer's own metrics, on the agent's registry. `sessionfleet_placement_demand` (in
 * core/metrics.ts) carries the fleet-wide demand the autoscaler reads; these add what an operator
 * needs to see how coordination is going, above all during a Redis outage.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export type FleetOutcome =
  | 'placed_local'
  | 'placed_remote'
  | 'placed_fail_open'
  | 'waited_for_capacity'
  | 'rejected_full'
  | 'rejected_quota'
  | 'rejected_unavailable'
  /** A client-chosen id whose session ended within the last lifetime, refused as a new session. */
  | 'rejected_ended'
  | 'routed_local'
  | 'routed_remote'
  | 'routed_by_hint'
  | 'routed_unavailable'
  /** A registry lookup on a request path that failed or timed out (the request then routed without it). */
  | 'lookup_failed'
  | 'rehomed'
  | 'gone';

/** What this agent makes of the fleet store: answering, or not (closed, or stalled past its timeouts). */
export type StoreState = 'up' | 'unreachable';

export interface FleetMetrics {
  readonly redisUp: Gauge;
  /** Changes of `StoreState`, by the state entered; each is also logged once. */
  readonly storeTransitions: Counter<'to'>;
  readonly instances: Gauge;
  readonly outcomes: Counter<'outcome'>;
  /** Sessions held here that the registry had given to another instance (split ownership, resolved). */
  readonly ownershipConflicts: Counter;
  /** Sessions of this instance's earlier life, by what the reconcile after a restart made of them (ADR 0022). */
  readonly reconciled: Counter<'outcome'>;
}

export function createFleetMetrics(registry: Registry): FleetMetrics {
  const registers = [registry];
  return {
    redisUp: new Gauge({
      name: 'sessionfleet_fleet_redis_up',
      help: '1 while the fleet store (Redis) answers and this instance is registered.',
      registers,
    }),
    storeTransitions: new Counter({
      name: 'sessionfleet_fleet_store_transitions_total',
      help: 'Changes of the fleet store (Redis) state as this agent sees it, by the state entered (up, unreachable).',
      labelNames: ['to'] as const,
      registers,
    }),
    instances: new Gauge({
      name: 'sessionfleet_fleet_instances',
      help: 'Live instances of the fleet, as of the last heartbeat.',
      registers,
    }),
    outcomes: new Counter({
      name: 'sessionfleet_fleet_outcomes_total',
      help: 'Placement and routing decisions of this agent, by outcome.',
      labelNames: ['outcome'] as const,
      registers,
    }),
    ownershipConflicts: new Counter({
      name: 'sessionfleet_fleet_ownership_conflicts_total',
      help: 'Sessions this instance held that the registry had given to another instance; the local copy was ended.',
      registers,
    }),
    reconciled: new Counter({
      name: 'sessionfleet_reconciled_sessions_total',
      help: 'Sessions the registry still gave this instance when its agent started, by outcome: adopted (the upstream holds it), ended (it does not, or the session timed out), failed (no answer within the budget; kept as held).',
      labelNames: ['outcome'] as const,
      registers,
    }),
  };
}
