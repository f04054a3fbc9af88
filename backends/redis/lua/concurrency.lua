--[[
limits-core: concurrency leases (must agree with algorithms/concurrency.py). A whole script,
after common.lua: it has no `decide`/`commit` fragment, since policies cannot hold leases.

The state is a hash: field = lease id (decimal, compared as a string, never converted to a
Lua number), value = "<expires_at_us>:<cost>". A lease is live while now < expires_at. The
live leases are at most `limit` (each holds at least 1), so reading them all is bounded.
Every write prunes the expired leases and sets PEXPIRE to the time until the latest live
lease expires: the key then vanishes when its last lease does. A denial, a peek or the
release of a lease that holds nothing writes nothing.

KEYS[1]  the key's leases
ARGV     now_us | '' (the server's TIME), cost, operation ('peek' | 'acquire' | 'release'),
         limit, lease_ttl_us, lease id (acquire, release)
Reply    peek, acquire: {allowed (1|0), remaining, reset_after_us, retry_after_us (-1 = never)}
         release: {released (1|0)}
]]

local key = KEYS[1]
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = t[1] * 1000000 + t[2]
end
local cost, op = tonumber(ARGV[2]), ARGV[3]
local limit, ttl, id = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]

-- The live leases: their ids, expiries and costs; and the expired ones' ids.
local ids, expiries, costs, dead = {}, {}, {}, {}
local used, newest, mine = 0, now, nil
local flat = redis.call('HGETALL', key)
for j = 1, #flat, 2 do
  local value = flat[j + 1]
  local sep = string.find(value, ':', 1, true)
  local expires_at = tonumber(string.sub(value, 1, sep - 1))
  if expires_at > now then
    local n = #ids + 1
    ids[n], expiries[n] = flat[j], expires_at
    costs[n] = tonumber(string.sub(value, sep + 1))
    if flat[j] == id then
      mine = n
    else
      used = used + costs[n]
      if expires_at > newest then newest = expires_at end
    end
  else
    dead[#dead + 1] = flat[j]
  end
end

-- Writes: prune the expired leases, then leave the key's TTL at its latest live expiry.
local function prune()
  for j = 1, #dead, 1000 do  -- stay far below Lua's limit on unpack()ed arguments
    redis.call('HDEL', key, unpack(dead, j, math.min(j + 999, #dead)))
  end
end

if op == 'release' then
  if not mine then return {0} end
  prune()
  redis.call('HDEL', key, id)  -- the hash (and key) vanish with their last field
  if newest > now then redis.call('PEXPIRE', key, px(newest - now)) end
  return {1}
end

-- An acquire's id is fresh: a live lease with the same id would be the same lease taken
-- twice, which the random 63-bit ids of the limiters make as good as impossible.
if mine then
  used = used + costs[mine]
  if expiries[mine] > newest then newest = expiries[mine] end
end
local reset = newest - now
if cost > limit then
  return {0, limit - used, reset, -1}
end
local excess = used + cost - limit
if excess > 0 then
  -- The request fits once leases holding `excess` cost have expired, earliest first.
  local order = {}
  for n = 1, #ids do order[n] = n end
  table.sort(order, function(a, b) return expiries[a] < expiries[b] end)
  local freed, at = 0, now
  for _, n in ipairs(order) do
    freed = freed + costs[n]
    at = expiries[n]
    if freed >= excess then break end
  end
  return {0, limit - used, reset, at - now}
end
if now + ttl > newest then newest = now + ttl end
if op == 'acquire' then
  prune()
  redis.call('HSET', key, id, string.format('%d:%d', now + ttl, cost))
  redis.call('PEXPIRE', key, px(newest - now))
end
return {1, limit - used - cost, newest - now, 0}
