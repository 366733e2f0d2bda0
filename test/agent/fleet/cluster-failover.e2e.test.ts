/**
 * A Redis Cluster failover of the primary serving the fleet's slot, under load (the tests are in
 * failover-suite.ts): three primaries with a replica each, real redis-server processes.
 */
import { fleetKeys } from '../../../agent/fleet/keys.js';
import { startRedisCluster } from '../../helpers/redis-cluster.js';
import { describeFailover } from './failover-suite.js';

describeFailover('Redis Cluster', (fleet) =>
  startRedisCluster({ slotKey: fleetKeys({ fleet }).fence, nodeTimeoutMs: 1000 }),
);
