/**
 * Faults a test injects into a `FleetCoordinator` from outside, through its transport and
 * scheduler options (no hooks in the production class):
 * - `crash()`: sudden death — the periodic tasks stop and both Redis connections drop without
 *   releasing anything, exactly what the rest of the fleet sees when a process is killed;
 * - `pauseHeartbeat(ms)`: a stalled heartbeat — no lease renewal for `ms`, everything else running.
 */
import type { Redis } from 'ioredis';
import type { FleetConnect, FleetScheduler, FleetTask } from '../../../agent/fleet/options.js';
import { createFleetRedis } from '../../../agent/fleet/redis.js';
import { redisEndpoint } from '../../../policy/redis-url.js';

export interface FleetFaults {
  /** Pass as `FleetCoordinatorOptions.connect`. */
  readonly connect: FleetConnect;
  /** Pass as `FleetCoordinatorOptions.scheduler`. */
  readonly scheduler: FleetScheduler;
  crash(): void;
  pauseHeartbeat(ms: number): Promise<void>;
}

export function fleetFaults(url: string, commandTimeoutMs = 1000): FleetFaults {
  const connections: Redis[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const pausedUntil = new Map<FleetTask, number>();
  return {
    connect: (_role, name) => {
      const redis = createFleetRedis(redisEndpoint(url), { name, commandTimeoutMs });
      connections.push(redis);
      return redis;
    },
    scheduler: {
      every(task, ms, run) {
        const timer = setInterval(() => {
          if (Date.now() < (pausedUntil.get(task) ?? 0)) return;
          run();
        }, ms);
        timer.unref();
        timers.add(timer);
        return () => {
          clearInterval(timer);
          timers.delete(timer);
        };
      },
    },
    crash() {
      for (const timer of timers) clearInterval(timer);
      timers.clear();
      for (const redis of connections) redis.disconnect();
    },
    async pauseHeartbeat(ms) {
      pausedUntil.set('heartbeat', Date.now() + ms);
      await new Promise((r) => setTimeout(r, ms));
    },
  };
}
