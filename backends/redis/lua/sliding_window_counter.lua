--[[
limits-core: sliding window counter (must agree with algorithms/sliding_window_counter.py).

The state is the string "<last>:<prev>:<curr>": the time of the newest admission in integer
microseconds, the cost admitted in the window before that admission's window, and the cost
admitted in that admission's window. Windows are aligned to the epoch, [k * period,
(k + 1) * period), so a window's start is `t - t % period` (floor_mod, exact). The algorithm
checks that limit * period < 2**53, so every product below is exact in a Lua double, and
quotients go through floor_div / ceil_div (common.lua).

Time never runs backwards for a key: a `now` before the newest admission is treated as that
time. An admitted write is one SET with PX = the time until the end of the next window, when
the newest window's count stops weighing (rounded up to the millisecond).

A refund lowers the count of the current window only, down to zero, and keeps the time of
the newest admission; it does not reach into the previous window. A state left counting
nothing is deleted.

Parameters: limit, period_us.
]]

local function sliding_window_counter_decide(key, now, cost, a, i)
  local limit, period = tonumber(a[i]), tonumber(a[i + 1])
  local prev, curr = 0, 0
  local stored = redis.call('GET', key)
  local start
  if stored then
    local s1 = string.find(stored, ':', 1, true)
    local s2 = string.find(stored, ':', s1 + 1, true)
    local last = tonumber(string.sub(stored, 1, s1 - 1))
    if now < last then now = last end
    start = now - floor_mod(now, period)
    -- Whole windows since the newest admission's window: its counts shift or lapse.
    local gap = start - (last - floor_mod(last, period))
    if gap < 2 * period then
      curr = tonumber(string.sub(stored, s2 + 1))
      if gap > 0 then
        prev, curr = curr, 0
      else
        prev = tonumber(string.sub(stored, s1 + 1, s2 - 1))
      end
    end
  else
    start = now - floor_mod(now, period)
  end
  local elapsed = now - start
  local left = period - elapsed
  -- The previous window's weighted share, in whole units of cost.
  local share = ceil_div(prev * left, period)
  local reset = 0
  if curr > 0 then reset = left + period elseif prev > 0 then reset = left end
  if cost > limit then
    return false, limit - curr - share, reset, -1
  end
  if curr + cost + share > limit then
    local retry
    if curr + cost <= limit then
      -- Fits later in this window, once prev's share has shrunk enough.
      retry = ceil_div(period * (prev + curr + cost - limit), prev) - elapsed
    else
      -- Fits in the next window, where curr is the previous count.
      retry = left + ceil_div(period * (curr + cost - limit), curr)
    end
    return false, limit - curr - share, reset, retry
  end
  curr = curr + cost
  return true, limit - curr - share, left + period, 0, now, prev, curr, left + period
end

local function sliding_window_counter_commit(key, write, now, cost, a, i, last, prev, curr, ttl)
  if write then
    redis.call('SET', key, string.format('%d:%d:%d', last, prev, curr), 'PX', px(ttl))
  end
end

local function sliding_window_counter_refund(key, now, amount, a, i)
  local period = tonumber(a[i + 1])
  local stored = redis.call('GET', key)
  if not stored then return end
  local s1 = string.find(stored, ':', 1, true)
  local s2 = string.find(stored, ':', s1 + 1, true)
  local last = tonumber(string.sub(stored, 1, s1 - 1))
  if now < last then now = last end
  local start = now - floor_mod(now, period)
  local gap = start - (last - floor_mod(last, period))
  if gap >= 2 * period then
    redis.call('DEL', key)
    return
  end
  -- Nothing admitted in this window (gap > 0): nothing to give back.
  if gap > 0 then return end
  local prev = tonumber(string.sub(stored, s1 + 1, s2 - 1))
  local curr = tonumber(string.sub(stored, s2 + 1)) - amount
  if curr < 0 then curr = 0 end
  if curr == 0 and prev == 0 then
    redis.call('DEL', key)
    return
  end
  local ttl = start + period - now
  if curr > 0 then ttl = ttl + period end
  redis.call('SET', key, string.format('%d:%d:%d', last, prev, curr), 'PX', px(ttl))
end
