/**
 * The Lua helpers every registry script starts with: the KEYS table (in the order of
 * `registryKeys` in `../scripts.ts`), the Redis clock, and the index, quota, reservation and
 * ended-id bookkeeping the scripts share. Each helper keeps one invariant of the registry; the
 * scripts that use them are in `sessions.ts` and `housekeeping.ts`.
 */
/** Helpers every registry script starts with. */
export const PRELUDE = `
local K = {
  leases = KEYS[1], capacity = KEYS[2], address = KEYS[3], info = KEYS[4],
  sessions = KEYS[5], expiries = KEYS[6], activity = KEYS[7],
  by_instance = KEYS[8], by_principal = KEYS[9], by_tenant = KEYS[10],
  reservations = KEYS[11], reservation_expiries = KEYS[12], demand = KEYS[13],
  ended = KEYS[14], ended_reasons = KEYS[15],
  free = KEYS[16], member_leases = KEYS[17], members = KEYS[18], member_changes = KEYS[19],
  member_meta = KEYS[20],
}

-- The Redis server's clock in milliseconds: the one clock all agents share.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Bounds of one owner's members in a lexicographic index: from '<owner>\\n' (inclusive) up to
-- '<owner>\\v' (exclusive); '\\v' is the byte right after '\\n', so nothing else falls between.
local function lex_min(owner) return '[' .. owner .. '\\n' end
local function lex_max(owner) return '(' .. owner .. '\\v' end

-- Slots in use on an instance: its sessions plus the reservations made for it.
local function used(instance)
  return redis.call('ZLEXCOUNT', K.by_instance, lex_min(instance), lex_max(instance))
end

-- An instance is alive while its lease deadline is ahead of the clock.
local function alive(instance, now)
  if instance == '' then return false end
  local deadline = redis.call('ZSCORE', K.leases, instance)
  return deadline ~= false and tonumber(deadline) > now
end

-- Keeps an instance's entry in the free-capacity index true: minus its free slots while it is
-- alive and has one, no entry otherwise. Called after every change to its capacity or to its slots
-- in use (sessions and reservations), so placement reads the best instance in O(log N) instead of
-- reading every instance. Agents of an earlier version do not call it: see pick().
local function refresh_free(instance, now)
  if instance == nil or instance == '' then return end
  local free = tonumber(redis.call('HGET', K.capacity, instance) or '0') - used(instance)
  if free > 0 and alive(instance, now) then
    redis.call('ZADD', K.free, -free, instance)
  else
    redis.call('ZREM', K.free, instance)
  end
end

-- The membership log agents mirror instead of reading the whole fleet at every heartbeat: each
-- change of an instance (joined, moved to another address, gone) takes the next version, and an
-- agent asks for what changed since the version it has.
local function mark_member(id, state)
  local version = redis.call('HINCRBY', K.member_meta, 'version', 1)
  redis.call('ZADD', K.member_changes, version, id)
  redis.call('HSET', K.members, id, state)
  return version
end

-- A principal is its name within its tenant: its slice of the per-principal index is named
-- '<principal>\\t<tenant>', or '<principal>' alone for a principal without a tenant ('' means
-- none). '\\t' occurs in no name, and sorts before '\\n': no pair's slice overlaps another's.
local function principal_key(principal, tenant)
  if tenant == '' then return principal end
  return principal .. '\\t' .. tenant
end

-- Adds or removes a member in the per-principal and per-tenant indexes ('' means none).
local function index_owners(op, principal, tenant, member)
  if principal ~= '' then redis.call(op, K.by_principal, 0, principal_key(principal, tenant) .. '\\n' .. member) end
  if tenant ~= '' then redis.call(op, K.by_tenant, 0, tenant .. '\\n' .. member) end
end
local function unindex_owners(principal, tenant, member)
  if principal ~= '' then
    redis.call('ZREM', K.by_principal, principal_key(principal, tenant) .. '\\n' .. member)
    -- Written before principals were keyed by tenant: '<principal>\\n<member>' whatever the tenant.
    if tenant ~= '' then redis.call('ZREM', K.by_principal, principal .. '\\n' .. member) end
  end
  if tenant ~= '' then redis.call('ZREM', K.by_tenant, tenant .. '\\n' .. member) end
end

-- Sessions and reservations of one principal (in its tenant), for its quota. At the limit the
-- entries are checked one by one against their session or reservation, so that what an agent of
-- an earlier version in the same fleet left behind holds no quota place: an entry whose session or
-- reservation is gone is dropped (that version removes only '<principal>\\n<id>'), and one written
-- under the principal's name alone for a session that has a tenant moves to its pair's slice.
local function principal_held(principal, tenant, limit)
  local key = principal_key(principal, tenant)
  local held = redis.call('ZLEXCOUNT', K.by_principal, lex_min(key), lex_max(key))
  if held < limit then return held end
  for _, m in ipairs(redis.call('ZRANGEBYLEX', K.by_principal, lex_min(key), lex_max(key))) do
    local id = string.sub(m, #key + 2)
    local raw
    if string.sub(id, 1, 1) == ' ' then
      raw = redis.call('HGET', K.reservations, string.sub(id, 2))
    else
      raw = redis.call('HGET', K.sessions, id)
    end
    local own = nil
    if raw then
      local rec = cjson.decode(raw)
      own = (rec.p or '') == '' and '' or principal_key(rec.p, rec.t or '')
    end
    if own ~= key then
      redis.call('ZREM', K.by_principal, m)
      if own ~= nil and own ~= '' then redis.call('ZADD', K.by_principal, 0, own .. '\\n' .. id) end
      held = held - 1
    end
  end
  return held
end

-- Forgets a reservation and gives back what it held (its slot and its quota places).
-- Reservation members carry a leading space, which no session id contains.
local function drop_reservation(rid, now)
  local raw = redis.call('HGET', K.reservations, rid)
  redis.call('HDEL', K.reservations, rid)
  redis.call('ZREM', K.reservation_expiries, rid)
  if not raw then return end
  local r = cjson.decode(raw)
  redis.call('ZREM', K.by_instance, r.i .. '\\n ' .. rid)
  refresh_free(r.i, now)
  unindex_owners(r.p, r.t, ' ' .. rid)
end

-- Reservations whose session was never opened (the creating agent died or gave up) expire;
-- reclaiming them here, a bounded number per call, keeps abandoned slots from leaking.
local function reclaim_reservations(now, budget)
  local expired = redis.call('ZRANGEBYSCORE', K.reservation_expiries, '-inf', now, 'LIMIT', 0, budget)
  for _, rid in ipairs(expired) do drop_reservation(rid, now) end
  return #expired
end

-- Removes a session from the registry and every index, freeing its slot and quota places.
local function drop_session(id, rec, now)
  redis.call('HDEL', K.sessions, id)
  redis.call('ZREM', K.expiries, id)
  redis.call('ZREM', K.activity, id)
  if rec.o ~= '' then
    redis.call('ZREM', K.by_instance, rec.o .. '\\n' .. id)
    refresh_free(rec.o, now)
  end
  unindex_owners(rec.p, rec.t, id)
end

-- Whether a session's time is up: 'expired-lifetime' past its absolute expiry, 'expired-idle'
-- idle too long (idle_ms 0: never), else false.
local function timed_out(id, rec, now, idle_ms)
  if tonumber(rec.e) <= now then return 'expired-lifetime' end
  if idle_ms > 0 then
    local seen = redis.call('ZSCORE', K.activity, id)
    if seen ~= false and now - tonumber(seen) >= idle_ms then return 'expired-idle' end
  end
  return false
end

-- The memory of ended ids. A client that chooses its session ids (header affinity) and keeps
-- sending one whose session ended must be told to pick a new one, whichever agent it reaches,
-- rather than silently get a new session under the old id. Each id is kept one session lifetime
-- after its end (K.ended: id -> forget-at, K.ended_reasons: id -> why), at most 'cap' of them.
-- 'memory' is {ttl ms, cap} from the caller's ARGV; a ttl or cap of 0 remembers nothing.
local function forget_ended(id)
  redis.call('ZREM', K.ended, id)
  redis.call('HDEL', K.ended_reasons, id)
end

-- Drops ids whose time is over, oldest first, a bounded number per call.
local function trim_ended(now, budget)
  local old = redis.call('ZRANGEBYSCORE', K.ended, '-inf', now, 'LIMIT', 0, budget)
  for _, id in ipairs(old) do forget_ended(id) end
  return #old
end

local function remember_ended(id, reason, now, memory)
  if reason == '' or memory[1] <= 0 or memory[2] <= 0 then return end
  redis.call('ZADD', K.ended, now + memory[1], id)
  redis.call('HSET', K.ended_reasons, id, reason)
  trim_ended(now, 8)
  -- The cap: the ids that would be forgotten soonest go first (every id is kept equally long, so
  -- those are the oldest). Bounded per call, so a lowered cap is reached over a few ends.
  local over = redis.call('ZCARD', K.ended) - memory[2]
  if over > 0 then
    local popped = redis.call('ZPOPMIN', K.ended, math.min(over, 64))
    for i = 1, #popped, 2 do redis.call('HDEL', K.ended_reasons, popped[i]) end
  end
end

-- Why id ended, if it ended within the last lifetime; nil otherwise.
local function ended_reason(id, now)
  local forget_at = redis.call('ZSCORE', K.ended, id)
  if not forget_at then return nil end
  if tonumber(forget_at) <= now then
    forget_ended(id)
    return nil
  end
  return redis.call('HGET', K.ended_reasons, id) or 'deleted'
end

-- drop_session for a session that ended (rather than one never opened): its id is remembered.
local function end_session(id, rec, reason, now, memory)
  drop_session(id, rec, now)
  remember_ended(id, reason, now, memory)
end

-- Where a new or re-homed session goes. This instance if it has a free slot; else the live
-- instance with the most free slots (ties: the smallest id, so the choice is deterministic);
-- else, as a last resort, this instance if it may evict an idle session (evictionPolicy lru, or
-- one idle past limits.evictIdleAfterSeconds),
-- because a free slot elsewhere costs a hop while an eviction costs someone their connection.
-- Instances offer capacity 0 while draining or while their concurrency is exhausted (as of their
-- last heartbeat), so they are never chosen. This instance knows its own state better than its
-- last heartbeat: self_mode is 'open', 'evict' (full but may evict) or 'closed' (take nothing).
-- Returns the chosen instance (or nil) and how many instances are alive: that, not how many
-- take sessions right now, is what counts against maxInstances.
--
-- pick_scan reads every live instance: O(N). It is what agents of an earlier version do, and
-- what this version does while one of them is alive (a mixed fleet during a rolling upgrade):
-- those agents change slots in use without keeping the free-capacity index true.
local function pick_scan(self, self_mode, now)
  local live = redis.call('ZRANGEBYSCORE', K.leases, '(' .. now, '+inf')
  local best, best_free = nil, 0
  local self_free = nil
  for _, id in ipairs(live) do
    local cap = tonumber(redis.call('HGET', K.capacity, id) or '0')
    if id == self and self_mode == 'closed' then
      cap = 0
    end
    if cap > 0 then
      local free = cap - used(id)
      if id == self then
        self_free = free
      elseif free > 0 and (best == nil or free > best_free or (free == best_free and id < best)) then
        best, best_free = id, free
      end
    end
  end
  if self_free ~= nil and self_free > 0 then return self, #live end
  if best ~= nil then return best, #live end
  if self_free ~= nil and self_mode == 'evict' then return self, #live end
  return nil, #live
end

-- The first entry of the free-capacity index other than self, checked against the truth (alive,
-- capacity minus slots in use) before it is trusted: an entry found wrong (its instance died, or
-- an earlier version's agent changed its slots) is corrected and the next one is read. Each
-- correction fixes one entry for good, so the loop is short and its cost amortized.
local function best_other(self, now)
  while true do
    local top = redis.call('ZRANGE', K.free, 0, 1, 'WITHSCORES')
    local id, score = top[1], top[2]
    if id == self then id, score = top[3], top[4] end
    if id == nil then return nil end
    local free = tonumber(redis.call('HGET', K.capacity, id) or '0') - used(id)
    if free > 0 and free == -tonumber(score) and alive(id, now) then return id end
    refresh_free(id, now)
  end
end

-- Live instances, and whether every one of them keeps the free-capacity index (protocol 2):
-- each writes its lease to both lease sets, an earlier version's agent only to the first.
local function fleet_size(now)
  local running = redis.call('ZCOUNT', K.leases, '(' .. now, '+inf')
  return running, running ~= redis.call('ZCOUNT', K.member_leases, '(' .. now, '+inf')
end

-- The same rules as pick_scan in O(log N): this instance from its own counters, the others from
-- the free-capacity index.
local function pick(self, self_mode, now)
  local running, mixed = fleet_size(now)
  if mixed then return pick_scan(self, self_mode, now) end
  local self_free = nil
  if self_mode ~= 'closed' and alive(self, now) then
    local cap = tonumber(redis.call('HGET', K.capacity, self) or '0')
    if cap > 0 then self_free = cap - used(self) end
  end
  if self_free ~= nil and self_free > 0 then return self, running end
  local best = best_other(self, now)
  if best ~= nil then return best, running end
  if self_free ~= nil and self_mode == 'evict' then return self, running end
  return nil, running
end
`;
