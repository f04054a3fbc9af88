--[[
limits-core: GCRA (must agree with algorithms/gcra.py), with redis-cell's reply.

The state is the string "<tat_us>:<frac>": the theoretical arrival time in whole microseconds
plus a remainder of `frac` scaled units (1 / scale microsecond each). The emission interval is
`interval` scaled units and the tolerance `burst * interval`; the algorithm checks that every
quantity stays below 2**53, exact in a Lua double, and quotients go through floor_div /
ceil_div (common.lua).

A `now` earlier than tat - tolerance, which only a clock that went back can produce, is
treated as that time. An admitted write is one SET with PX = the time until the key is fully
rested again (rounded up to the millisecond): a missing key then means the same rested key.

A refund moves the TAT back by `amount` intervals, exactly (whole microseconds and a
remainder, as stored), never before now; a fully rested key is deleted.

Parameters: burst, scale, interval, tolerance.
]]

local function gcra_decide(key, now, cost, a, i)
  local burst, scale = tonumber(a[i]), tonumber(a[i + 1])
  local interval, tolerance = tonumber(a[i + 2]), tonumber(a[i + 3])
  -- ttl: max(tat, now) - now in scaled units, at most the tolerance.
  local ttl = 0
  local stored = redis.call('GET', key)
  if stored then
    local sep = string.find(stored, ':', 1, true)
    local ahead = tonumber(string.sub(stored, 1, sep - 1)) - now
    if ahead > floor_div(tolerance, scale) then
      ttl = tolerance
    elseif ahead >= 0 then
      ttl = ahead * scale + tonumber(string.sub(stored, sep + 1))
      if ttl > tolerance then ttl = tolerance end
    end
  end
  local slack = tolerance - ttl
  if cost > burst then
    return false, floor_div(slack, interval), ceil_div(ttl, scale), -1
  end
  local need = cost * interval
  if need > slack then
    return false, floor_div(slack, interval), ceil_div(ttl, scale), ceil_div(need - slack, scale)
  end
  ttl = ttl + need
  local reset = ceil_div(ttl, scale)
  return true, floor_div(tolerance - ttl, interval), reset, 0, ttl, reset
end

local function gcra_commit(key, write, now, cost, a, i, ttl, reset)
  if write then
    local scale = tonumber(a[i + 1])
    local frac = math.fmod(ttl, scale)
    local tat = now + (ttl - frac) / scale
    redis.call('SET', key, string.format('%d:%d', tat, frac), 'PX', px(reset))
  end
end

local function gcra_refund(key, now, amount, a, i)
  local burst, scale, interval = tonumber(a[i]), tonumber(a[i + 1]), tonumber(a[i + 2])
  local stored = redis.call('GET', key)
  if not stored then return end
  local sep = string.find(stored, ':', 1, true)
  local tat = tonumber(string.sub(stored, 1, sep - 1))
  if amount > burst then amount = burst end
  -- tat + frac / scale - amount * interval / scale, borrowing whole microseconds.
  local frac = tonumber(string.sub(stored, sep + 1)) - amount * interval
  if frac < 0 then
    local borrow = ceil_div(-frac, scale)
    tat, frac = tat - borrow, frac + borrow * scale
  end
  if tat < now or (tat == now and frac == 0) then
    redis.call('DEL', key)
    return
  end
  local rested = tat - now
  if frac > 0 then rested = rested + 1 end
  redis.call('SET', key, string.format('%d:%d', tat, frac), 'PX', px(rested))
end
