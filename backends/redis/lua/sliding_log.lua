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

A refund removes `amount` units from the newest (the most recent admissions), all the live
ones at most, and deletes a log left without live units. Removing the newest units can make
an older time the newest again, with fewer live units before it than when it was logged
(the trim of a later hit removed some): its units are then renamed "<t>:<c - m + 1>" ..
"<t>:<c>", `c` being the live units a hit at t would count and `m` their number at t, so a
later hit at t still adds new members. The TTL becomes the newest unit's time in the window.

Parameters: limit, period_us.
]]

-- Add the units "<score>:<first>" .. "<score>:<last>".
local function sliding_log_add(key, score, first, last)
  local batch, n = {}, 0
  for k = first, last do
    batch[n + 1] = score
    batch[n + 2] = string.format('%s:%d', score, k)
    n = n + 2
    if n >= 1000 then  -- stay far below Lua's limit on unpack()ed arguments
      redis.call('ZADD', key, unpack(batch, 1, n))
      n = 0
    end
  end
  if n > 0 then
    redis.call('ZADD', key, unpack(batch, 1, n))
  end
end

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
  sliding_log_add(key, string.format('%d', at), used + 1, used + cost)
  redis.call('PEXPIRE', key, px(tonumber(a[i + 1])))
end

local function sliding_log_refund(key, now, amount, a, i)
  local period = tonumber(a[i + 1])
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  local newest_t = tonumber(newest[2])
  if not newest_t then return end
  if now < newest_t then now = newest_t end
  local live = redis.call('ZCOUNT', key, '(' .. string.format('%d', now - period), '+inf')
  if amount >= live then
    redis.call('DEL', key)
    return
  end
  redis.call('ZREMRANGEBYRANK', key, -amount, -1)
  newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  local t = tonumber(newest[2])
  local score = string.format('%d', t)
  local group = redis.call('ZRANGEBYSCORE', key, score, score)
  local m = #group
  local c = redis.call('ZCOUNT', key, '(' .. string.format('%d', t - period), '+inf')
  local low, high = math.huge, 0
  for _, member in ipairs(group) do
    local seq = tonumber(string.sub(member, #score + 2))
    if seq < low then low = seq end
    if seq > high then high = seq end
  end
  -- Distinct numbers from c - m + 1 to c are exactly those names: nothing to rename.
  if low ~= c - m + 1 or high ~= c then
    for k = 1, m, 500 do
      redis.call('ZREM', key, unpack(group, k, math.min(k + 499, m)))
    end
    sliding_log_add(key, score, c - m + 1, c)
  end
  redis.call('PEXPIRE', key, px(t + period - now))
end
