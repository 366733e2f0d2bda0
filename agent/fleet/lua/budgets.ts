/**
 * The budget sync (`policy.limits`, ADR 0015): each agent writes its own counts of requests,
 * streams and tasks per principal and tenant, and reads the rest of the fleet's, summed, in one
 * atomic step. KEYS: the budgets hash, the instance leases. ARGV: this instance's id, then
 * `<kind>\n<who>`, count pairs.
 */
export const BUDGET_SYNC = `
local budgets, leases = KEYS[1], KEYS[2]
local self = ARGV[1]
-- The Redis clock decides whose lease ran out, as in every fleet script.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- 1. One pass over every field: this agent's old counts go (rewritten below); so do the counts of
--    an agent whose lease ran out (it died holding them); the others are summed per kind and who.
local all = redis.call('HGETALL', budgets)
local sums, alive = {}, {}
for i = 1, #all, 2 do
  local field = all[i]
  local cut = string.find(field, '\\n', 1, true)
  local owner = cut and string.sub(field, 1, cut - 1) or ''
  local live = false
  if cut and owner ~= self then
    live = alive[owner]
    if live == nil then
      local deadline = redis.call('ZSCORE', leases, owner)
      live = deadline ~= false and tonumber(deadline) > now
      alive[owner] = live
    end
  end
  if live then
    local rest = string.sub(field, cut + 1)
    sums[rest] = (sums[rest] or 0) + tonumber(all[i + 1])
  else
    redis.call('HDEL', budgets, field)
  end
end

-- 2. This agent's counts as of now.
for i = 2, #ARGV, 2 do
  redis.call('HSET', budgets, self .. '\\n' .. ARGV[i], ARGV[i + 1])
end

-- 3. The rest of the fleet's counts, flattened: kind-and-who, count, ...
local reply = {}
for rest, n in pairs(sums) do
  reply[#reply + 1] = rest
  reply[#reply + 1] = n
end
return reply
`;
