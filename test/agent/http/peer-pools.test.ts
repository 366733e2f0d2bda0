/**
 * The pools to other agents: one for requests and one for streams per agent (a stream holds its
 * connection for as long as it is open, and undici walks a pool's connections on every dispatch),
 * each reused, all closed together.
 */
import { describe, expect, it } from 'vitest';
import { PeerPools } from '../../../agent/http/fleet.js';

describe('PeerPools', () => {
  it('keeps a request pool and a stream pool per agent, reused by origin, and closes them all', async () => {
    const pools = new PeerPools(1000);
    const requests = pools.get('http://10.0.0.7:8080');
    const streams = pools.get('http://10.0.0.7:8080/', true);
    expect(requests.host).toBe('10.0.0.7:8080');
    expect(streams.host).toBe('10.0.0.7:8080');
    expect(streams.pool).not.toBe(requests.pool);
    expect(pools.get('http://10.0.0.7:8080/any/path').pool).toBe(requests.pool);
    expect(pools.get('http://10.0.0.7:8080', true).pool).toBe(streams.pool);
    expect(pools.get('http://10.0.0.8:8080').pool).not.toBe(requests.pool);
    await pools.close();
    expect(requests.pool.destroyed).toBe(true);
    expect(streams.pool.destroyed).toBe(true);
  });
});
