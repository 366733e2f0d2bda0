/**
 * The registry scripts on a session's way through the fleet: the instance lease (heartbeat),
 * placement and its reservation, opening, ending and resolving a session. Each reply has one
 * typed decoder in `../replies.ts`.
 */
import { PRELUDE } from './prelude.js';

/**
 * Renews this instance's lease and publishes what it offers. KEYS: registry.
 * ARGV: self, lease ms, capacity (0 while draining or saturated), advertised URL, info JSON, the
 * membership epoch and version this agent mirrors ('' and 0: none yet).
 * Costs O(log N) plus what changed, never a walk of the fleet (but in a mixed fleet, below).
 * Returns {previous deadline or -1, now, demand, live instances, epoch, version, mode, then per
 * member: id, address, 1 (live) or 0 (gone)}. Mode 'delta': the members that changed since the
 * agent's version; 'full': every live member (the agent had none, or too old a version, or an
 * earlier version's agent is alive and keeps no membership log: then the live fleet is read).
 */
export const HEARTBEAT = `${PRELUDE}
local self, lease_ms, address = ARGV[1], tonumber(ARGV[2]), ARGV[4]
local known_epoch, known_version = ARGV[6] or '', tonumber(ARGV[7] or '0') or 0
local now = now_ms()
-- 1. Read the old deadline first: if it had already passed, other agents may have treated this
--    instance as dead (re-homed its sessions), and the agent must re-check what it holds.
local previous = redis.call('ZSCORE', K.leases, self)
local moved = redis.call('HGET', K.address, self) ~= address
-- 2. Renew the lease (in both lease sets: see fleet_size) and publish capacity, address and load.
redis.call('ZADD', K.leases, now + lease_ms, self)
redis.call('ZADD', K.member_leases, now + lease_ms, self)
redis.call('HSET', K.capacity, self, ARGV[3])
redis.call('HSET', K.address, self, address)
redis.call('HSET', K.info, self, ARGV[5])
refresh_free(self, now)
-- 3. Membership. A new member, one back after its lease lapsed, or one at a new address is a
--    change every agent hears of at its next heartbeat.
redis.call('HSETNX', K.member_meta, 'epoch', now)
if moved or redis.call('HGET', K.members, self) ~= '1' then mark_member(self, '1') end
-- 4. Leases that ran out since the last heartbeat of any agent are members gone: the first
--    heartbeat after a lapse records it, once. So are leases ended by a leave (deadline 0: the
--    earlier version records nothing else), until the sweep forgets them. Usually there are none:
--    this costs O(log N).
local checked = tonumber(redis.call('HGET', K.member_meta, 'checked') or '0')
-- (From the last check inclusive: a deadline set to exactly that moment afterwards is not missed;
-- one recorded already is skipped below.)
local lapsed = redis.call('ZRANGEBYSCORE', K.leases, math.min(checked, now), now)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.leases, 0, 0)) do lapsed[#lapsed + 1] = id end
for _, id in ipairs(lapsed) do
  redis.call('ZREM', K.free, id)
  if redis.call('HGET', K.members, id) ~= '0' then mark_member(id, '0') end
end
redis.call('HSET', K.member_meta, 'checked', now)
-- 5. Fleet-wide demand: new sessions still waiting for capacity (the autoscaler's signal).
local demand = redis.call('ZCOUNT', K.demand, '(' .. now, '+inf')
-- 6. What changed since the agent's version, or the whole membership when it has none to start from.
local running, mixed = fleet_size(now)
local meta = redis.call('HMGET', K.member_meta, 'epoch', 'version', 'floor')
local epoch, version, floor = meta[1], tonumber(meta[2] or '0'), tonumber(meta[3] or '0')
local out = { previous and tonumber(previous) or -1, now, demand, running, epoch, version }
if mixed then
  out[7] = 'full'
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.leases, '(' .. now, '+inf')) do
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', K.address, id) or ''
    out[#out + 1] = 1
  end
elseif known_epoch ~= epoch or known_version < floor or known_version > version or known_version == 0 then
  out[7] = 'full'
  local all = redis.call('HGETALL', K.members)
  for i = 1, #all, 2 do
    if all[i + 1] == '1' then
      out[#out + 1] = all[i]
      out[#out + 1] = redis.call('HGET', K.address, all[i]) or ''
      out[#out + 1] = 1
    end
  end
else
  out[7] = 'delta'
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.member_changes, '(' .. known_version, '+inf')) do
    local up = redis.call('HGET', K.members, id) == '1'
    out[#out + 1] = id
    out[#out + 1] = up and (redis.call('HGET', K.address, id) or '') or ''
    out[#out + 1] = up and 1 or 0
  end
end
return out
`;

/**
 * Leaves the fleet at once rather than when the lease runs out: the deadline goes to 0 (as the
 * earlier version sets it, so the sweep forgets the instance at its next run), and the members
 * hear of it at their next heartbeat. KEYS: registry. ARGV: self. Returns 1 if it was registered.
 */
export const LEAVE = `${PRELUDE}
local self = ARGV[1]
if not redis.call('ZSCORE', K.leases, self) then return 0 end
redis.call('ZADD', K.leases, 'XX', 0, self)
redis.call('ZADD', K.member_leases, 'XX', 0, self)
redis.call('ZREM', K.free, self)
if redis.call('HGET', K.members, self) ~= '0' then mark_member(self, '0') end
return 1
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
export const PLACE = `${PRELUDE}
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
refresh_free(target, now)
index_owners('ZADD', principal, tenant, ' ' .. rid)
if waiter ~= '' then redis.call('ZREM', K.demand, waiter) end
return { 'placed', target, redis.call('HGET', K.address, target) or '' }
`;

/** Gives a reservation back (the session was never opened). KEYS: registry. ARGV: reservation id. */
export const CANCEL = `${PRELUDE}
local existed = redis.call('HEXISTS', K.reservations, ARGV[1])
drop_reservation(ARGV[1], now_ms())
return existed
`;

/**
 * Registers a session that an instance has just opened, consuming its reservation. KEYS: registry.
 * ARGV: id, owner, reservation id ('' none), principal, tenant, created ms, expires ms, resumable,
 * the upstream path the session lives at ('' unknown; kept for the owner's reconcile after a restart).
 * Returns {'ok'} | {'exists', owner, principal, tenant} (the registered session's, '' for none) |
 * {'ended', why} (the reservation was made for this client-chosen id, which ended meanwhile).
 */
export const OPEN = `${PRELUDE}
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
      drop_reservation(rid, now)
      return { 'ended', why }
    end
  end
end
-- 2. The reservation's places pass to the session. If it had expired (and been reclaimed), the
--    session is registered anyway: it already exists upstream, and refusing it now would only
--    leave it unaccounted for.
if rid ~= '' then drop_reservation(rid, now) end
-- 3. The record and every index.
local rec = { o = owner, p = principal, t = tenant, c = tonumber(ARGV[6]), e = tonumber(ARGV[7]), r = tonumber(ARGV[8]) }
if ARGV[9] and ARGV[9] ~= '' then rec.u = ARGV[9] end
redis.call('HSET', K.sessions, id, cjson.encode(rec))
redis.call('ZADD', K.expiries, rec.e, id)
redis.call('ZADD', K.activity, rec.c, id)
redis.call('ZADD', K.by_instance, 0, owner .. '\\n' .. id)
refresh_free(owner, now)
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
export const END = `${PRELUDE}
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
  if rec.o ~= '' then
    redis.call('ZREM', K.by_instance, rec.o .. '\\n' .. id)
    refresh_free(rec.o, now_ms())
  end
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
export const RESOLVE = `${PRELUDE}
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
if rec.o ~= '' then
  redis.call('ZREM', K.by_instance, rec.o .. '\\n' .. id)
  refresh_free(rec.o, now)
end
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
refresh_free(target, now)
return { 'moved', target, redis.call('HGET', K.address, target) or '', raw }
`;
