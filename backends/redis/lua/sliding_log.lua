--[[
limits-core: sliding log (must agree with algorithms/sliding_log.py).

The log is a sorted set with one member per admitted unit of cost, scored by its time in
integer microseconds. A unit logged at t counts while now - t < period, so members scored
<= now - period have left the window; they are trimmed on each admitted write, which keeps the
set bounded by the limit. Counting uses ZCOUNT over (now - period, +inf], so a call that
writes nothing still sees exactly the live units.

Members stay unique for equal timestamps: the member of the i-th unit of a request is
"<now>:<used + i>", `used` being the live units before it. Calls at the same (clamped) time
only ever see the live set grow, so their sequence numbers never repeat; a later time gives
a different prefix.

Time never runs backwards for a key: a `now` before the newest logged unit is treated as that
unit's time. Every write sets PEXPIRE to the period (rounded up to the millisecond): by then
every unit has left the window, so the TTL is garbage collection only.

Parameters: limit, period_us.
]]

local function sliding_log_decide(key, now, cost, a, i)
  local limit, period = tonumber(a[i]), tonumber(a[i + 1])
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  local newest_t = tonumber(newest[2])
  if newest_t and now < newest_t then
    now = newest_t
  end
  local gone = string.format('%d', now - period)  -- units at or before this time have left
  local used = redis.call('ZCOUNT', key, '(' .. gone, '+inf')
  local reset = 0
  if used > 0 then reset = newest_t + period - now end
  if cost > limit then
    return false, limit - used, reset, -1
  end
  local excess = used + cost - limit
  if excess > 0 then
    -- The request fits once the `excess` oldest live units have left the window.
    local unit = redis.call('ZRANGEBYSCORE', key, '(' .. gone, '+inf', 'WITHSCORES',
      'LIMIT', excess - 1, 1)
    return false, limit - used, reset, tonumber(unit[2]) + period - now
  end
  return true, limit - used - cost, period, 0, now, used, gone
end

local function sliding_log_commit(key, write, now, cost, a, i, at, used, gone)
  if not write then return end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', gone)
  local score = string.format('%d', at)
  local batch, n = {}, 0
  for k = 1, cost do
    batch[n + 1] = score
    batch[n + 2] = string.format('%s:%d', score, used + k)
    n = n + 2
    if n >= 1000 then  -- stay far below Lua's limit on unpack()ed arguments
      redis.call('ZADD', key, unpack(batch, 1, n))
      n = 0
    end
  end
  if n > 0 then
    redis.call('ZADD', key, unpack(batch, 1, n))
  end
  redis.call('PEXPIRE', key, px(tonumber(a[i + 1])))
end
