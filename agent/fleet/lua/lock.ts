/**
 * The collaborative lock's scripts (see `../lock.ts`): acquire with a FIFO queue and a fencing
 * token, compare-and-delete release, compare-and-extend renewal, and leaving the queue. They take
 * their own small KEYS lists, not the registry's. Each reply has one typed decoder in
 * `../replies.ts`.
 */

/**
 * Takes a lock, or a place in its FIFO queue. KEYS: holder, queue, waiters, fence counter,
 * ticket counter. ARGV: holder id, TTL ms, join queue (1/0), waiter TTL ms.
 * Returns {1, fencing token, 0} when granted; {0, holder's remaining ms (-2 if free), position}
 * when not (position -1: not queued).
 */
export const LOCK_ACQUIRE = `
local holder_key, queue, waiters, fence, ticket = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, ttl, join, waiter_ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- 1. Drop waiters that stopped renewing their place (their process died): they must not block
--    the queue for longer than the waiter TTL.
local dead = redis.call('ZRANGEBYSCORE', waiters, '-inf', now)
for _, w in ipairs(dead) do
  redis.call('ZREM', queue, w)
  redis.call('ZREM', waiters, w)
end
-- 2. The holder value is '<holder id>:<token>'. If it is already ours (our earlier call was
--    granted but its reply was lost), hand the same token back instead of blocking ourselves.
local held = redis.call('GET', holder_key)
if held and string.sub(held, 1, #id + 1) == id .. ':' then
  return { 1, tonumber(string.sub(held, #id + 2)), 0 }
end
-- 3. Free, and nobody ahead of us in the queue: take it. The fencing token comes from one
--    fleet-wide counter, so tokens grow strictly in the order locks are granted. SET NX guards
--    the invariant even if step 2 were wrong.
if not held then
  local head = redis.call('ZRANGE', queue, 0, 0)[1]
  if head == nil or head == id then
    local token = redis.call('INCR', fence)
    redis.call('SET', holder_key, id .. ':' .. token, 'NX', 'PX', ttl)
    redis.call('ZREM', queue, id)
    redis.call('ZREM', waiters, id)
    return { 1, token, 0 }
  end
end
-- 4. Busy (or another waiter's turn): join the queue once, in ticket order, and renew our place.
if join == '1' then
  if redis.call('ZSCORE', queue, id) == false then
    redis.call('ZADD', queue, redis.call('INCR', ticket), id)
  end
  redis.call('ZADD', waiters, now + waiter_ttl, id)
end
local rank = redis.call('ZRANK', queue, id)
return { 0, redis.call('PTTL', holder_key), rank == false and -1 or rank }
`;

/**
 * Compare-and-delete: releases the lock only if `holder id` still holds it, then tells the next
 * waiter it is its turn. KEYS: holder, queue, waiters. ARGV: holder id, channel.
 * Returns 1 if released, 0 if the lock was no longer ours.
 */
export const LOCK_RELEASE = `
local holder_key, queue, waiters = KEYS[1], KEYS[2], KEYS[3]
local id, channel = ARGV[1], ARGV[2]
local held = redis.call('GET', holder_key)
if not held or string.sub(held, 1, #id + 1) ~= id .. ':' then return 0 end
redis.call('DEL', holder_key)
-- Wake only the head of the queue (after dropping dead waiters, so the wake-up is not wasted).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, w in ipairs(redis.call('ZRANGEBYSCORE', waiters, '-inf', now)) do
  redis.call('ZREM', queue, w)
  redis.call('ZREM', waiters, w)
end
local head = redis.call('ZRANGE', queue, 0, 0)[1]
if head then redis.call('PUBLISH', channel, head) end
return 1
`;

/**
 * Compare-and-extend: renews the TTL only if `holder id` still holds the lock.
 * KEYS: holder. ARGV: holder id, TTL ms. Returns 1 if renewed, 0 if the lock was lost.
 */
export const LOCK_EXTEND = `
local held = redis.call('GET', KEYS[1])
if not held or string.sub(held, 1, #ARGV[1] + 1) ~= ARGV[1] .. ':' then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
`;

/**
 * A waiter gives up its place (timed out or cancelled); if the lock is free, the new head is told.
 * KEYS: holder, queue, waiters. ARGV: waiter id, channel. Returns 1 if it was queued.
 */
export const LOCK_LEAVE = `
local holder_key, queue, waiters = KEYS[1], KEYS[2], KEYS[3]
local removed = redis.call('ZREM', queue, ARGV[1])
redis.call('ZREM', waiters, ARGV[1])
if redis.call('EXISTS', holder_key) == 0 then
  local head = redis.call('ZRANGE', queue, 0, 0)[1]
  if head then redis.call('PUBLISH', ARGV[2], head) end
end
return removed
`;
