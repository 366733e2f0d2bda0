/**
 * The registry scripts that repair rather than serve: an instance's resync after Redis came back
 * or its lease lapsed, and the janitor leader's sweep. Each reply has one typed decoder in
 * `../replies.ts`.
 */
import { PRELUDE } from './prelude.js';

/**
 * Makes the registry agree with what this instance holds, after Redis came back (it may have
 * restarted empty) or after this instance's lease had lapsed. KEYS: registry.
 * ARGV: self, memory TTL ms, memory cap, then per local session: id, principal, tenant, created,
 * expires, resumable, last active.
 * Returns {registered, kept, released, then per conflict: id, owner}.
 */
export const RESYNC = `${PRELUDE}
local self = ARGV[1]
local memory = { tonumber(ARGV[2]), tonumber(ARGV[3]) }
local now = now_ms()
local registered, kept, released = 0, 0, 0
local conflicts = {}
local held = {}
-- 1. Every session this instance holds: register it if Redis lost it, claim it if it was handed
--    off meanwhile, report it if another instance took it over (the agent then drops its copy).
for i = 4, #ARGV, 7 do
  local id = ARGV[i]
  held[id] = true
  local raw = redis.call('HGET', K.sessions, id)
  if not raw then
    local rec = { o = self, p = ARGV[i + 1], t = ARGV[i + 2], c = tonumber(ARGV[i + 3]), e = tonumber(ARGV[i + 4]), r = tonumber(ARGV[i + 5]) }
    redis.call('HSET', K.sessions, id, cjson.encode(rec))
    redis.call('ZADD', K.expiries, rec.e, id)
    redis.call('ZADD', K.activity, tonumber(ARGV[i + 6]), id)
    redis.call('ZADD', K.by_instance, 0, self .. '\\n' .. id)
    index_owners('ZADD', rec.p, rec.t, id)
    forget_ended(id)
    registered = registered + 1
  else
    local rec = cjson.decode(raw)
    if rec.o == self or rec.o == '' then
      if rec.o == '' then
        rec.o = self
        redis.call('HSET', K.sessions, id, cjson.encode(rec))
      end
      redis.call('ZADD', K.by_instance, 0, self .. '\\n' .. id)
      kept = kept + 1
    else
      conflicts[#conflicts + 1] = id
      conflicts[#conflicts + 1] = rec.o
    end
  end
end
-- 2. Sessions the registry still gives this instance but that it no longer holds (they ended
--    while Redis was away, or before a restart of this instance): hand off the resumable ones,
--    end the rest (lost with this instance's earlier life: 'owner-lost'). Reservations made for
--    this instance are left to expire.
local members = redis.call('ZRANGEBYLEX', K.by_instance, lex_min(self), lex_max(self))
for _, member in ipairs(members) do
  local id = string.sub(member, #self + 2)
  if string.sub(id, 1, 1) ~= ' ' and not held[id] then
    local raw = redis.call('HGET', K.sessions, id)
    redis.call('ZREM', K.by_instance, member)
    if raw then
      local rec = cjson.decode(raw)
      if tonumber(rec.r) == 1 then
        rec.o = ''
        redis.call('HSET', K.sessions, id, cjson.encode(rec))
      else
        rec.o = ''
        end_session(id, rec, 'owner-lost', now, memory)
      end
    end
    released = released + 1
  end
end
refresh_free(self, now)
local out = { registered, kept, released }
for _, v in ipairs(conflicts) do out[#out + 1] = v end
return out
`;

/**
 * Housekeeping, run by the janitor leader only (a bounded amount per call). KEYS: registry.
 * ARGV: idle ms, grace ms (how long past its lease an instance is kept), budget, memory TTL ms,
 * memory cap.
 * Returns {reservations reclaimed, sessions expired, sessions handed off, sessions dropped,
 * instances removed, waiters expired, ended ids forgotten}.
 */
export const SWEEP = `${PRELUDE}
local idle_ms, grace_ms, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local memory = { tonumber(ARGV[4]), tonumber(ARGV[5]) }
local now = now_ms()
local reclaimed = reclaim_reservations(now, budget)
local expired, handed, dropped, removed = 0, 0, 0, 0
-- 1. Sessions past their absolute lifetime, wherever they are.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.expiries, '-inf', now, 'LIMIT', 0, budget)) do
  local raw = redis.call('HGET', K.sessions, id)
  if raw then
    end_session(id, cjson.decode(raw), 'expired-lifetime', now, memory)
  else
    redis.call('ZREM', K.expiries, id)
  end
  expired = expired + 1
end
-- 2. Idle sessions without a live owner (a live owner judges idleness itself: it sees open
--    streams and in-flight requests that the registry does not).
if idle_ms > 0 then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.activity, '-inf', now - idle_ms, 'LIMIT', 0, budget)) do
    local raw = redis.call('HGET', K.sessions, id)
    if not raw then
      redis.call('ZREM', K.activity, id)
    else
      local rec = cjson.decode(raw)
      if not alive(rec.o, now) then
        end_session(id, rec, 'expired-idle', now, memory)
        expired = expired + 1
      end
    end
  end
end
-- 3. Instances dead for longer than the grace period: their resumable sessions are handed off
--    (the next request resumes them elsewhere), the others dropped; once nothing refers to the
--    instance any more, it is forgotten.
for _, instance in ipairs(redis.call('ZRANGEBYSCORE', K.leases, '-inf', now - grace_ms, 'LIMIT', 0, budget)) do
  local members = redis.call('ZRANGEBYLEX', K.by_instance, lex_min(instance), lex_max(instance), 'LIMIT', 0, budget)
  for _, member in ipairs(members) do
    local id = string.sub(member, #instance + 2)
    if string.sub(id, 1, 1) == ' ' then
      drop_reservation(string.sub(id, 2), now)
      redis.call('ZREM', K.by_instance, member)
    else
      local raw = redis.call('HGET', K.sessions, id)
      redis.call('ZREM', K.by_instance, member)
      if raw then
        local rec = cjson.decode(raw)
        if tonumber(rec.r) == 1 then
          rec.o = ''
          redis.call('HSET', K.sessions, id, cjson.encode(rec))
          handed = handed + 1
        else
          end_session(id, rec, 'owner-lost', now, memory)
          dropped = dropped + 1
        end
      end
    end
  end
  redis.call('ZREM', K.free, instance)
  if used(instance) == 0 then
    redis.call('ZREM', K.leases, instance)
    redis.call('ZREM', K.member_leases, instance)
    redis.call('HDEL', K.capacity, instance)
    redis.call('HDEL', K.address, instance)
    redis.call('HDEL', K.info, instance)
    -- Its place in the membership log goes too. Members whose version is older than its last
    -- change are sent the whole membership once (the floor); a member still marked live here
    -- (no heartbeat recorded its lapse) moves the floor to now, so no agent keeps it.
    local changed = redis.call('ZSCORE', K.member_changes, instance)
    if changed then
      local floor = tonumber(changed)
      if redis.call('HGET', K.members, instance) == '1' then
        floor = tonumber(redis.call('HINCRBY', K.member_meta, 'version', 1))
      end
      if floor > tonumber(redis.call('HGET', K.member_meta, 'floor') or '0') then
        redis.call('HSET', K.member_meta, 'floor', floor)
      end
      redis.call('ZREM', K.member_changes, instance)
      redis.call('HDEL', K.members, instance)
    end
    removed = removed + 1
  end
end
-- 4. Waiters whose wait is over no longer count as demand.
local waiters = redis.call('ZREMRANGEBYSCORE', K.demand, '-inf', now)
-- 5. Ended ids remembered for a whole lifetime are forgotten (the checks ignore them already).
local forgotten = trim_ended(now, budget)
return { reclaimed, expired, handed, dropped, removed, waiters, forgotten }
`;

/**
 * Sets the length of the scale list to the fleet's session demand: sessions registered, slots
 * reserved for sessions being created, and new sessions waiting for capacity. An autoscaler that
 * counts list entries (KEDA's `redis` scaler) then scales on sessions, not on open requests.
 * Adds or trims only the difference, and lets the list expire if no leader refreshes it.
 * KEYS: sessions (hash), reservations (hash), demand (zset), scale list. ARGV: expiry ms.
 * Returns {demand, previous length}.
 */
export const SCALE_GAUGE = `
local demand = redis.call('HLEN', KEYS[1]) + redis.call('HLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3])
local length = redis.call('LLEN', KEYS[4])
if demand == 0 then
  redis.call('DEL', KEYS[4])
  return { 0, length }
end
if length > demand then
  redis.call('LTRIM', KEYS[4], 0, demand - 1)
else
  local missing = demand - length
  while missing > 0 do
    local batch = math.min(missing, 1000)
    local items = {}
    for i = 1, batch do items[i] = '1' end
    redis.call('RPUSH', KEYS[4], unpack(items))
    missing = missing - batch
  end
end
redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[1]))
return { demand, length }
`;
