--[[
limits-core: sliding log, one atomic step (must agree with algorithms/sliding_log.py).

The log is a sorted set with one member per admitted unit of cost, scored by its time in
integer microseconds. A unit logged at t counts while now - t < period, so members scored
<= now - period have left the window; they are trimmed on each admitted write, which keeps the
set bounded by the limit. Counting uses ZCOUNT over (now - period, +inf], so a denied or
peeking call that writes nothing still sees exactly the live units.

Members stay unique for equal timestamps: the member of the i-th unit of a request is
"<now>:<used + i>", `used` being the live units before it. Calls at the same (clamped) time
only ever see the live set grow, so their sequence numbers never repeat; a later time gives
a different prefix.

The clock: ARGV[1] is the limiter's time in microseconds, or empty (or negative) to use the
server's TIME. Time never runs backwards for a key: a `now` before the newest logged unit is
treated as that unit's time. Every write sets PEXPIRE to the period (rounded up to the
millisecond): by then every unit has left the window, so the TTL is garbage collection only.

KEYS[1]  the log (sorted set)
ARGV     now_us | '', cost, consume ('1' | '0'), limit, period_us
Reply    {allowed (1|0), remaining, reset_after_us, retry_after_us (-1 = never)}, integers
]]

local key = KEYS[1]
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local consume = ARGV[3] == '1'
local limit = tonumber(ARGV[4])
local period = tonumber(ARGV[5])

if not now or now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Lua's own number-to-string conversion would print timestamps in exponent notation.
local function int(x)
  return string.format('%d', x)
end

local function ttl_ms(us)
  local r = math.fmod(us, 1000)
  local ms = (us - r) / 1000
  if r > 0 then ms = ms + 1 end
  if ms < 1 then ms = 1 end
  return int(ms)
end

local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
local newest_t = tonumber(newest[2])
if newest_t and now < newest_t then
  now = newest_t
end
local gone = int(now - period)  -- units logged at or before this time have left the window
local used = redis.call('ZCOUNT', key, '(' .. gone, '+inf')
local reset = 0
if used > 0 then reset = newest_t + period - now end

if cost > limit then
  return {0, limit - used, reset, -1}
end
local excess = used + cost - limit
if excess > 0 then
  -- The request fits once the `excess` oldest live units have left the window.
  local unit = redis.call('ZRANGEBYSCORE', key, '(' .. gone, '+inf', 'WITHSCORES',
    'LIMIT', excess - 1, 1)
  return {0, limit - used, reset, tonumber(unit[2]) + period - now}
end

if consume then
  redis.call('ZREMRANGEBYSCORE', key, '-inf', gone)
  local score = int(now)
  local batch, n = {}, 0
  for i = 1, cost do
    batch[n + 1] = score
    batch[n + 2] = score .. ':' .. int(used + i)
    n = n + 2
    if n >= 1000 then  -- stay far below Lua's limit on unpack()ed arguments
      redis.call('ZADD', key, unpack(batch, 1, n))
      n = 0
    end
  end
  if n > 0 then
    redis.call('ZADD', key, unpack(batch, 1, n))
  end
  redis.call('PEXPIRE', key, ttl_ms(period))
end
return {1, limit - used - cost, period, 0}
