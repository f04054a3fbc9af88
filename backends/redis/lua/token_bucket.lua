--[[
limits-core: token bucket (must agree with algorithms/token_bucket.py).

The state is the string "<tokens>:<last>": the level in scaled units and the time of that
level in microseconds; a key with no state is a full bucket. One token is `unit` scaled units
and the bucket gains `refill` units per microsecond, so every quantity is an integer below
2**53, exact in a Lua double. Divisions go through math.fmod, which is exact, so floor and
ceiling quotients are exact too (floor_div and ceil_div, in common.lua).

Time never runs backwards for a key: a `now` before the stored time is treated as the stored
time. An admitted write is one SET with PX = the time until the bucket is full again (rounded
up to the millisecond): a missing key then means the same full bucket.

A refund puts tokens back up to the capacity; a bucket full again is deleted (no key means
the same full bucket).

Parameters: burst, unit, refill, capacity, fill_us.
]]

local function token_bucket_decide(key, now, cost, a, i)
  local burst, unit, refill = tonumber(a[i]), tonumber(a[i + 1]), tonumber(a[i + 2])
  local capacity, fill = tonumber(a[i + 3]), tonumber(a[i + 4])
  local tokens = capacity
  local stored = redis.call('GET', key)
  if stored then
    local sep = string.find(stored, ':', 1, true)
    local last = tonumber(string.sub(stored, sep + 1))
    local elapsed = now - last
    if elapsed < 0 then
      now = last
      tokens = tonumber(string.sub(stored, 1, sep - 1))
    elseif elapsed < fill then
      -- elapsed * refill < capacity; a sum above capacity is clamped, so rounding cannot matter.
      tokens = tonumber(string.sub(stored, 1, sep - 1)) + elapsed * refill
      if tokens > capacity then tokens = capacity end
    end
  end
  local need = cost * unit
  if tokens < need then
    local retry = -1
    if cost <= burst then retry = ceil_div(need - tokens, refill) end
    return false, floor_div(tokens, unit), ceil_div(capacity - tokens, refill), retry
  end
  tokens = tokens - need
  local reset = ceil_div(capacity - tokens, refill)
  return true, floor_div(tokens, unit), reset, 0, tokens, now, reset
end

local function token_bucket_commit(key, write, now, cost, a, i, tokens, last, reset)
  if write then
    redis.call('SET', key, string.format('%d:%d', tokens, last), 'PX', px(reset))
  end
end

local function token_bucket_refund(key, now, amount, a, i)
  local burst, unit, refill = tonumber(a[i]), tonumber(a[i + 1]), tonumber(a[i + 2])
  local capacity, fill = tonumber(a[i + 3]), tonumber(a[i + 4])
  local stored = redis.call('GET', key)
  if not stored then return end
  local sep = string.find(stored, ':', 1, true)
  local last = tonumber(string.sub(stored, sep + 1))
  local elapsed = now - last
  if elapsed >= fill then
    redis.call('DEL', key)
    return
  end
  if elapsed < 0 then
    now, elapsed = last, 0
  end
  if amount > burst then amount = burst end
  -- Each term is below 2**53 and a sum of at least capacity is deleted: rounding cannot matter.
  local tokens = tonumber(string.sub(stored, 1, sep - 1)) + elapsed * refill + amount * unit
  if tokens >= capacity then
    redis.call('DEL', key)
    return
  end
  redis.call('SET', key, string.format('%d:%d', tokens, now), 'PX',
    px(ceil_div(capacity - tokens, refill)))
end
