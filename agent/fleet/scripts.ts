/**
 * The Lua scripts that keep the fleet's rules true across agents. Each rule that reads and then
 * writes more than one key (placement and quotas, ownership, re-homing, locks) is one script, so
 * Redis runs it atomically: no other agent's command lands between the check and the write.
 * They are registered with ioredis `defineCommand` (EVALSHA, falling back to EVAL after a Redis
 * restart empties the script cache).
 *
 * Every time comparison uses the Redis server's clock (`TIME`), never an agent's: agents whose
 * clocks drift still agree on whose lease has run out. (Redis 5+ replicates a script's effects,
 * not the script, so reading the clock is allowed.)
 *
 * All registry scripts take the same KEYS list (`registryKeys`), so the shared Lua helpers can
 * name any key; every key they touch is declared, which is what Redis Cluster requires.
 */
import type { Redis, Result } from 'ioredis';
import type { FleetKeys } from './keys.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    sfHeartbeat(...args: Array<string | number>): Result<unknown[], Context>;
    sfPlace(...args: Array<string | number>): Result<unknown[], Context>;
    sfCancel(...args: Array<string | number>): Result<number, Context>;
    sfOpen(...args: Array<string | number>): Result<unknown[], Context>;
    sfEnd(...args: Array<string | number>): Result<unknown[], Context>;
    sfResolve(...args: Array<string | number>): Result<unknown[], Context>;
    sfResync(...args: Array<string | number>): Result<unknown[], Context>;
    sfSweep(...args: Array<string | number>): Result<number[], Context>;
    sfLockAcquire(...args: Array<string | number>): Result<number[], Context>;
    sfLockRelease(...args: Array<string | number>): Result<number, Context>;
    sfLockExtend(...args: Array<string | number>): Result<number, Context>;
    sfLockLeave(...args: Array<string | number>): Result<number, Context>;
  }
}

/** The KEYS of every registry script, in this order (the Lua `K` table below mirrors it). */
export function registryKeys(keys: FleetKeys): string[] {
  return [
    keys.leases,
    keys.capacity,
    keys.address,
    keys.info,
    keys.sessions,
    keys.expiries,
    keys.activity,
    keys.byInstance,
    keys.byPrincipal,
    keys.byTenant,
    keys.reservations,
    keys.reservationExpiries,
    keys.demand,
    keys.ended,
    keys.endedReasons,
  ];
}

/** Helpers every registry script starts with. */
const PRELUDE = `
local K = {
  leases = KEYS[1], capacity = KEYS[2], address = KEYS[3], info = KEYS[4],
  sessions = KEYS[5], expiries = KEYS[6], activity = KEYS[7],
  by_instance = KEYS[8], by_principal = KEYS[9], by_tenant = KEYS[10],
  reservations = KEYS[11], reservation_expiries = KEYS[12], demand = KEYS[13],
  ended = KEYS[14], ended_reasons = KEYS[15],
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
local function drop_reservation(rid)
  local raw = redis.call('HGET', K.reservations, rid)
  redis.call('HDEL', K.reservations, rid)
  redis.call('ZREM', K.reservation_expiries, rid)
  if not raw then return end
  local r = cjson.decode(raw)
  redis.call('ZREM', K.by_instance, r.i .. '\\n ' .. rid)
  unindex_owners(r.p, r.t, ' ' .. rid)
end

-- Reservations whose session was never opened (the creating agent died or gave up) expire;
-- reclaiming them here, a bounded number per call, keeps abandoned slots from leaking.
local function reclaim_reservations(now, budget)
  local expired = redis.call('ZRANGEBYSCORE', K.reservation_expiries, '-inf', now, 'LIMIT', 0, budget)
  for _, rid in ipairs(expired) do drop_reservation(rid) end
  return #expired
end

-- Removes a session from the registry and every index, freeing its slot and quota places.
local function drop_session(id, rec)
  redis.call('HDEL', K.sessions, id)
  redis.call('ZREM', K.expiries, id)
  redis.call('ZREM', K.activity, id)
  if rec.o ~= '' then redis.call('ZREM', K.by_instance, rec.o .. '\\n' .. id) end
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
  drop_session(id, rec)
  remember_ended(id, reason, now, memory)
end

-- Where a new or re-homed session goes. This instance if it has a free slot; else the live
-- instance with the most free slots (ties: the smallest id, so the choice is deterministic);
-- else, as a last resort, this instance if it may evict an idle session (evictionPolicy lru),
-- because a free slot elsewhere costs a hop while an eviction costs someone their connection.
-- Instances offer capacity 0 while draining or while their concurrency is exhausted (as of their
-- last heartbeat), so they are never chosen. This instance knows its own state better than its
-- last heartbeat: self_mode is 'open', 'evict' (full but may evict) or 'closed' (take nothing).
-- Returns the chosen instance (or nil) and how many instances are alive: that, not how many
-- take sessions right now, is what counts against maxInstances.
local function pick(self, self_mode, now)
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
`;

/**
 * Renews this instance's lease and publishes what it offers. KEYS: registry.
 * ARGV: self, lease ms, capacity (0 while draining or saturated), advertised URL, info JSON.
 * Returns {previous deadline or -1, now, demand, then per live instance: id, address, capacity,
 * used, deadline}.
 */
const HEARTBEAT = `${PRELUDE}
local self, lease_ms = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
-- 1. Read the old deadline first: if it had already passed, other agents may have treated this
--    instance as dead (re-homed its sessions), and the agent must re-check what it holds.
local previous = redis.call('ZSCORE', K.leases, self)
-- 2. Renew the lease and publish capacity, address and load in one step.
redis.call('ZADD', K.leases, now + lease_ms, self)
redis.call('HSET', K.capacity, self, ARGV[3])
redis.call('HSET', K.address, self, ARGV[4])
redis.call('HSET', K.info, self, ARGV[5])
-- 3. Fleet-wide demand: new sessions still waiting for capacity (the autoscaler's signal).
local demand = redis.call('ZCOUNT', K.demand, '(' .. now, '+inf')
-- 4. The live fleet as this agent will cache it (routing by owner hint while Redis is away).
local out = { previous and tonumber(previous) or -1, now, demand }
local live = redis.call('ZRANGEBYSCORE', K.leases, '(' .. now, '+inf', 'WITHSCORES')
for i = 1, #live, 2 do
  local id = live[i]
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', K.address, id) or ''
  out[#out + 1] = tonumber(redis.call('HGET', K.capacity, id) or '0')
  out[#out + 1] = used(id)
  out[#out + 1] = tonumber(live[i + 1])
end
return out
`;

/**
 * Chooses an instance for a new session and reserves a slot there, enforcing the fleet-wide
 * per-principal and per-tenant quotas in the same step. KEYS: registry.
 * ARGV: self, principal, tenant, principal limit (0: none), tenant limit (0: none), max instances,
 * reservation id, reservation TTL ms, self mode (open/evict/closed), waiter id ('' if not waiting), wait ms,
 * the session id when the client chose it ('' otherwise: the id comes later, from the server or the agent).
 * Returns {'placed', instance, address} | {'ended', why} | {'quota', 'principal'|'tenant', held} |
 * {'full', can grow 1/0, running instances, demand}.
 */
const PLACE = `${PRELUDE}
local self, principal, tenant = ARGV[1], ARGV[2], ARGV[3]
local principal_limit, tenant_limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_instances = tonumber(ARGV[6])
local rid, rid_ttl, self_mode = ARGV[7], tonumber(ARGV[8]), ARGV[9]
local waiter, wait_ms = ARGV[10], tonumber(ARGV[11])
local sid = ARGV[12]
local now = now_ms()
-- 1. Give back slots and quota places of reservations that were never used.
reclaim_reservations(now, 64)
-- 1b. A client-chosen id whose session ended within the last lifetime is not a new session: the
--     client gets the expired answer, whatever the quotas and the capacity.
if sid ~= '' then
  local why = ended_reason(sid, now)
  if why then return { 'ended', why } end
end
-- 2. Quotas first: a principal (in its tenant) or a tenant at its limit is refused whatever the
--    capacity. Sessions and live reservations both count, so concurrent placements cannot overshoot.
if principal ~= '' and principal_limit > 0 then
  local held = principal_held(principal, tenant, principal_limit)
  if held >= principal_limit then return { 'quota', 'principal', held } end
end
if tenant ~= '' and tenant_limit > 0 then
  local held = redis.call('ZLEXCOUNT', K.by_tenant, lex_min(tenant), lex_max(tenant))
  if held >= tenant_limit then return { 'quota', 'tenant', held } end
end
-- 3. Choose the instance.
local target, running = pick(self, self_mode, now)
if target == nil then
  -- 4. Nowhere to go. Below max instances the fleet may grow: record this waiter as demand (with
  --    its own deadline, so a waiter that gives up or dies stops counting by itself).
  local can_grow = running < max_instances
  if can_grow and waiter ~= '' then redis.call('ZADD', K.demand, now + wait_ms, waiter) end
  local demand = redis.call('ZCOUNT', K.demand, '(' .. now, '+inf')
  return { 'full', can_grow and 1 or 0, running, demand }
end
-- 5. Reserve: the slot (index by instance) and the quota places (by principal, by tenant) are
--    taken now; opening the session turns the reservation into the session.
-- The client-chosen id rides along, so that opening the session checks the memory of ended ids again.
redis.call('HSET', K.reservations, rid, cjson.encode({ i = target, p = principal, t = tenant, x = sid ~= '' and sid or nil }))
redis.call('ZADD', K.reservation_expiries, now + rid_ttl, rid)
redis.call('ZADD', K.by_instance, 0, target .. '\\n ' .. rid)
index_owners('ZADD', principal, tenant, ' ' .. rid)
if waiter ~= '' then redis.call('ZREM', K.demand, waiter) end
return { 'placed', target, redis.call('HGET', K.address, target) or '' }
`;

/** Gives a reservation back (the session was never opened). KEYS: registry. ARGV: reservation id. */
const CANCEL = `${PRELUDE}
local existed = redis.call('HEXISTS', K.reservations, ARGV[1])
drop_reservation(ARGV[1])
return existed
`;

/**
 * Registers a session that an instance has just opened, consuming its reservation. KEYS: registry.
 * ARGV: id, owner, reservation id ('' none), principal, tenant, created ms, expires ms, resumable.
 * Returns {'ok'} | {'exists', owner, principal, tenant} (the registered session's, '' for none) |
 * {'ended', why} (the reservation was made for this client-chosen id, which ended meanwhile).
 */
const OPEN = `${PRELUDE}
local id, owner, rid = ARGV[1], ARGV[2], ARGV[3]
local principal, tenant = ARGV[4], ARGV[5]
local now = now_ms()
-- 1. One owner per session: an id already registered is never overwritten. Who holds it is
--    returned, so the refused front can tell the session's own principal from another one.
local existing = redis.call('HGET', K.sessions, id)
if existing then
  local rec = cjson.decode(existing)
  return { 'exists', rec.o or '', rec.p or '', rec.t or '' }
end
-- 1b. Placement refused an ended client-chosen id; one that ended between placement and now (a
--     concurrent session under the same id came and went) is refused here, in the same step.
if rid ~= '' then
  local raw = redis.call('HGET', K.reservations, rid)
  if raw and cjson.decode(raw).x == id then
    local why = ended_reason(id, now)
    if why then
      drop_reservation(rid)
      return { 'ended', why }
    end
  end
end
-- 2. The reservation's places pass to the session. If it had expired (and been reclaimed), the
--    session is registered anyway: it already exists upstream, and refusing it now would only
--    leave it unaccounted for.
if rid ~= '' then drop_reservation(rid) end
-- 3. The record and every index.
local rec = { o = owner, p = principal, t = tenant, c = tonumber(ARGV[6]), e = tonumber(ARGV[7]), r = tonumber(ARGV[8]) }
redis.call('HSET', K.sessions, id, cjson.encode(rec))
redis.call('ZADD', K.expiries, rec.e, id)
redis.call('ZADD', K.activity, rec.c, id)
redis.call('ZADD', K.by_instance, 0, owner .. '\\n' .. id)
index_owners('ZADD', principal, tenant, id)
-- A live session is not an ended one (an id the front may reuse, such as a resumed Copilot session).
forget_ended(id)
return { 'ok' }
`;

/**
 * Ends a session, or hands it off. KEYS: registry. ARGV: id, expected owner ('' any), mode, reason
 * ('' to remember nothing), memory TTL ms, memory cap.
 * Mode 'delete' removes it and remembers its id as ended; 'handoff' keeps a resumable session
 * registered without an owner (its quota places stay taken) so the next request resumes it on a
 * live instance — it did not end.
 * Returns {'ended'} | {'handed-off'} | {'unknown'} | {'not-owner', owner}.
 */
const END = `${PRELUDE}
local id, expected, mode, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local memory = { tonumber(ARGV[5]), tonumber(ARGV[6]) }
local raw = redis.call('HGET', K.sessions, id)
if not raw then return { 'unknown' } end
local rec = cjson.decode(raw)
-- 1. Compare-and-end: an instance that lost the session (it was re-homed while this instance
--    was cut off) must not end it for its new owner.
if expected ~= '' and rec.o ~= expected then return { 'not-owner', rec.o } end
-- 2. Hand-off: free the owner's slot, keep the session and its quota places.
if mode == 'handoff' and tonumber(rec.r) == 1 then
  if rec.o ~= '' then redis.call('ZREM', K.by_instance, rec.o .. '\\n' .. id) end
  rec.o = ''
  redis.call('HSET', K.sessions, id, cjson.encode(rec))
  return { 'handed-off' }
end
-- 3. Otherwise it is gone for good, and its id is remembered as ended.
end_session(id, rec, reason, now_ms(), memory)
return { 'ended' }
`;

/**
 * Finds a session's owner for an agent that does not hold it, re-homing it if the owner is gone.
 * KEYS: registry. ARGV: id, self, self mode (open/evict/closed), idle ms, max instances, memory TTL ms,
 * memory cap (for the ids of sessions that end here).
 * Returns {'owned', owner, address, record} | {'moved', instance, address, record} |
 * {'gone', why} | {'unknown'} | {'full', can grow 1/0}; 'why' is how the session ended: here
 * ('expired-lifetime', 'expired-idle', 'owner-lost'), or earlier, as the memory of ended ids has it.
 */
const RESOLVE = `${PRELUDE}
local id, self, self_mode = ARGV[1], ARGV[2], ARGV[3]
local idle_ms, max_instances = tonumber(ARGV[4]), tonumber(ARGV[5])
local memory = { tonumber(ARGV[6]), tonumber(ARGV[7]) }
local now = now_ms()
local raw = redis.call('HGET', K.sessions, id)
if not raw then
  -- 0. Not a session (any more). If it ended within the last lifetime, say how, so that every
  --    agent answers it as the agent that ended it does, not as an id never seen.
  local why = ended_reason(id, now)
  if why then return { 'gone', why } end
  return { 'unknown' }
end
local rec = cjson.decode(raw)
-- 1. A live owner other than the caller keeps the session: route to it. (The caller is only
--    asking because it does not hold the session, so an owner equal to the caller counts as lost.)
if rec.o ~= self and alive(rec.o, now) then
  return { 'owned', rec.o, redis.call('HGET', K.address, rec.o) or '', raw }
end
-- 2. The owner is gone (lease expired), handed the session off, or lost it. A session whose time
--    is up, or whose state died with its owner, ends here: the client starts anew (its id is
--    remembered as ended, so a client-chosen one is not taken for a new session).
local expired = timed_out(id, rec, now, idle_ms)
if expired then
  end_session(id, rec, expired, now, memory)
  return { 'gone', expired }
end
if tonumber(rec.r) ~= 1 then
  end_session(id, rec, 'owner-lost', now, memory)
  return { 'gone', 'owner-lost' }
end
-- 3. Resumable: free the old owner's slot first (so staying on the caller is possible), then
--    choose a live instance exactly as for a new session, and move ownership in the same step.
--    Two agents racing here are serialized by Redis: the second sees the first one's live owner.
if rec.o ~= '' then redis.call('ZREM', K.by_instance, rec.o .. '\\n' .. id) end
local target, running = pick(self, self_mode, now)
if target == nil then
  rec.o = ''
  redis.call('HSET', K.sessions, id, cjson.encode(rec))
  return { 'full', running < max_instances and 1 or 0 }
end
rec.o = target
raw = cjson.encode(rec)
redis.call('HSET', K.sessions, id, raw)
redis.call('ZADD', K.by_instance, 0, target .. '\\n' .. id)
return { 'moved', target, redis.call('HGET', K.address, target) or '', raw }
`;

/**
 * Makes the registry agree with what this instance holds, after Redis came back (it may have
 * restarted empty) or after this instance's lease had lapsed. KEYS: registry.
 * ARGV: self, memory TTL ms, memory cap, then per local session: id, principal, tenant, created,
 * expires, resumable, last active.
 * Returns {registered, kept, released, then per conflict: id, owner}.
 */
const RESYNC = `${PRELUDE}
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
const SWEEP = `${PRELUDE}
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
      drop_reservation(string.sub(id, 2))
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
  if used(instance) == 0 then
    redis.call('ZREM', K.leases, instance)
    redis.call('HDEL', K.capacity, instance)
    redis.call('HDEL', K.address, instance)
    redis.call('HDEL', K.info, instance)
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
 * Takes a lock, or a place in its FIFO queue. KEYS: holder, queue, waiters, fence counter,
 * ticket counter. ARGV: holder id, TTL ms, join queue (1/0), waiter TTL ms.
 * Returns {1, fencing token, 0} when granted; {0, holder's remaining ms (-2 if free), position}
 * when not (position -1: not queued).
 */
const LOCK_ACQUIRE = `
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
const LOCK_RELEASE = `
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
const LOCK_EXTEND = `
local held = redis.call('GET', KEYS[1])
if not held or string.sub(held, 1, #ARGV[1] + 1) ~= ARGV[1] .. ':' then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
`;

/**
 * A waiter gives up its place (timed out or cancelled); if the lock is free, the new head is told.
 * KEYS: holder, queue, waiters. ARGV: waiter id, channel. Returns 1 if it was queued.
 */
const LOCK_LEAVE = `
local holder_key, queue, waiters = KEYS[1], KEYS[2], KEYS[3]
local removed = redis.call('ZREM', queue, ARGV[1])
redis.call('ZREM', waiters, ARGV[1])
if redis.call('EXISTS', holder_key) == 0 then
  local head = redis.call('ZRANGE', queue, 0, 0)[1]
  if head then redis.call('PUBLISH', ARGV[2], head) end
end
return removed
`;

const REGISTRY_KEY_COUNT = 15;

/** Registers every script on a connection (idempotent). */
export function defineFleetCommands(redis: Redis): void {
  if (typeof (redis as Partial<Redis>).sfPlace === 'function') return;
  const registry: Array<[string, string]> = [
    ['sfHeartbeat', HEARTBEAT],
    ['sfPlace', PLACE],
    ['sfCancel', CANCEL],
    ['sfOpen', OPEN],
    ['sfEnd', END],
    ['sfResolve', RESOLVE],
    ['sfResync', RESYNC],
    ['sfSweep', SWEEP],
  ];
  for (const [name, lua] of registry) redis.defineCommand(name, { numberOfKeys: REGISTRY_KEY_COUNT, lua });
  redis.defineCommand('sfLockAcquire', { numberOfKeys: 5, lua: LOCK_ACQUIRE });
  redis.defineCommand('sfLockRelease', { numberOfKeys: 3, lua: LOCK_RELEASE });
  redis.defineCommand('sfLockExtend', { numberOfKeys: 1, lua: LOCK_EXTEND });
  redis.defineCommand('sfLockLeave', { numberOfKeys: 3, lua: LOCK_LEAVE });
}
