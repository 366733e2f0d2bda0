/**
 * The scripts of the affinity-key registry (`../affinity-keys.ts`): MCP 2026 task ids and the
 * handles the policy names, each a HASH `{owner, principal, tenant}` under the fleet's prefix with
 * a PX TTL. They take their own small KEYS lists; every key is declared (Redis Cluster).
 */

/**
 * Records a key as held by this instance. KEYS: the key's hash, the index of live keys (ZSET
 * '<kind>\n<key>' -> expiry ms). ARGV: owner, principal ('' for none), tenant ('' for none), TTL
 * ms, index member. A key another owner already holds is not taken over: the first recording wins
 * (a server mints its task ids, so two owners mean a collision). Returns the owner recorded.
 */
export const KEY_RECORD = `
local key, index = KEYS[1], KEYS[2]
local owner, principal, tenant, ttl, member = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- 1. The index forgets keys whose TTL ran out (their hashes expired by themselves).
redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
-- 2. Held already (by us: a repeated answer; by another: keep the first), refresh nothing.
local held = redis.call('HGET', key, 'owner')
if held and held ~= owner then return held end
-- 3. Record it with its TTL in one step, so a key never lives without one; index it until then.
redis.call('HSET', key, 'owner', owner, 'principal', principal, 'tenant', tenant)
redis.call('PEXPIRE', key, ttl)
redis.call('ZADD', index, now + ttl, member)
return owner
`;

/**
 * Where a key lives. KEYS: the key's hash, the instance leases (ZSET id -> deadline), the
 * instance addresses (HASH id -> URL). Returns {} for an unknown key; else {owner, principal,
 * tenant, alive (1/0), address or ''}. Alive is decided on the Redis clock, as everywhere.
 */
export const KEY_LOCATE = `
local key, leases, addresses = KEYS[1], KEYS[2], KEYS[3]
local rec = redis.call('HMGET', key, 'owner', 'principal', 'tenant')
if not rec[1] then return {} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = tonumber(redis.call('ZSCORE', leases, rec[1]) or '0')
local alive = 0
if deadline > now then alive = 1 end
return { rec[1], rec[2] or '', rec[3] or '', alive, redis.call('HGET', addresses, rec[1]) or '' }
`;
