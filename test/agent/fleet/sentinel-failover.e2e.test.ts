/**
 * A Sentinel failover of the fleet's primary under load (the tests are in failover-suite.ts): a
 * primary, a replica and three sentinels, each a real redis-server process.
 */
import { startSentinelSet } from '../../helpers/redis-sentinel.js';
import { describeFailover } from './failover-suite.js';

describeFailover('Sentinel', () => startSentinelSet({ downAfterMs: 1000 }));
