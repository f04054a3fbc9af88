--[[
limits-core: leaky bucket as a meter (must agree with algorithms/leaky_bucket.py).

The state is the string "<level>:<last>": the level in scaled units and the time of that
level in microseconds; a key with no state is an empty bucket. One unit of cost is `unit`
scaled units and the bucket drains `drain` units per microsecond; the algorithm checks that
every quantity stays below 2**53, exact in a Lua double, and quotients go through floor_div /
ceil_div (common.lua).

Time never runs backwards for a key: a `now` before the stored time is treated as the stored
time. An admitted write is one SET with PX = the time until the bucket has drained empty
(rounded up to the millisecond): a missing key then means the same empty bucket.

A refund drains `amount` at once, down to empty; an empty bucket is deleted.

Parameters: capacity, unit, drain, full, empty_us.
]]

local function leaky_bucket_decide(key, now, cost, a, i)
  local capacity, unit, drain = tonumber(a[i]), tonumber(a[i + 1]), tonumber(a[i + 2])
  local full, empty = tonumber(a[i + 3]), tonumber(a[i + 4])
  local level = 0
  local stored = redis.call('GET', key)
  if stored then
    local sep = string.find(stored, ':', 1, true)
    local last = tonumber(string.sub(stored, sep + 1))
    local elapsed = now - last
    if elapsed < 0 then
      now = last
      level = tonumber(string.sub(stored, 1, sep - 1))
    elseif elapsed < empty then
      -- elapsed * drain < full + drain: below 2**53.
      level = tonumber(string.sub(stored, 1, sep - 1)) - elapsed * drain
      if level < 0 then level = 0 end
    end
  end
  local room = full - level
  local need = cost * unit
  if need > room then
    local retry = -1
    if cost <= capacity then retry = ceil_div(need - room, drain) end
    return false, floor_div(room, unit), ceil_div(level, drain), retry
  end
  level = level + need
  local reset = ceil_div(level, drain)
  return true, floor_div(full - level, unit), reset, 0, level, now, reset
end

local function leaky_bucket_commit(key, write, now, cost, a, i, level, last, reset)
  if write then
    redis.call('SET', key, string.format('%d:%d', level, last), 'PX', px(reset))
  end
end

local function leaky_bucket_refund(key, now, amount, a, i)
  local capacity, unit, drain = tonumber(a[i]), tonumber(a[i + 1]), tonumber(a[i + 2])
  local empty = tonumber(a[i + 4])
  local stored = redis.call('GET', key)
  if not stored then return end
  local sep = string.find(stored, ':', 1, true)
  local last = tonumber(string.sub(stored, sep + 1))
  local elapsed = now - last
  if elapsed >= empty then
    redis.call('DEL', key)
    return
  end
  if elapsed < 0 then
    now, elapsed = last, 0
  end
  if amount > capacity then amount = capacity end
  -- level < 2**53 and the sum taken off is below 2**54: a level left above zero is exact.
  local level = tonumber(string.sub(stored, 1, sep - 1)) - (elapsed * drain + amount * unit)
  if level <= 0 then
    redis.call('DEL', key)
    return
  end
  redis.call('SET', key, string.format('%d:%d', level, now), 'PX', px(ceil_div(level, drain)))
end
