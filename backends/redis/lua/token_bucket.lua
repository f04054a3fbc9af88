--[[
limits-core: token bucket, one atomic step (must agree with algorithms/token_bucket.py).

The state is a hash {t = tokens in scaled units, l = time of that level in microseconds}; a
key with no state is a full bucket. One token is `unit` scaled units and the bucket gains
`refill` units per microsecond, so every quantity is an integer below 2**53, exact in a Lua
double. Divisions go through math.fmod, which is exact, so floor and ceiling quotients are
exact too (a rounded a / b could land on the wrong side of an integer).

The clock: ARGV[1] is the limiter's time in microseconds, or empty (or negative) to use the
server's TIME. Time never runs backwards for a key: a `now` before the stored time is treated
as the stored time. An admitted write sets PEXPIRE to the time until the bucket is full again
(rounded up to the millisecond): a missing key then means the same full bucket.

KEYS[1]  the bucket hash
ARGV     now_us | '', cost, consume ('1' | '0'), burst, unit, refill, capacity, fill_us
Reply    {allowed (1|0), remaining, reset_after_us, retry_after_us (-1 = never)}, integers
]]

local key = KEYS[1]
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local consume = ARGV[3] == '1'
local burst = tonumber(ARGV[4])
local unit = tonumber(ARGV[5])
local refill = tonumber(ARGV[6])
local capacity = tonumber(ARGV[7])
local fill = tonumber(ARGV[8])

if not now or now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

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

-- Exact integer quotients of non-negative integers below 2**53.
local function floor_div(a, b)
  return (a - math.fmod(a, b)) / b
end

local function ceil_div(a, b)
  local r = math.fmod(a, b)
  local q = (a - r) / b
  if r > 0 then q = q + 1 end
  return q
end

local found = redis.call('HMGET', key, 't', 'l')
local tokens, last = tonumber(found[1]), tonumber(found[2])
if tokens and last then
  local elapsed = now - last
  if elapsed < 0 then
    now = last
  elseif elapsed >= fill then
    tokens = capacity
  else
    -- elapsed * refill < capacity; a sum above capacity is clamped, so rounding cannot matter.
    tokens = tokens + elapsed * refill
    if tokens > capacity then tokens = capacity end
  end
else
  tokens = capacity
end

if cost > burst then
  return {0, floor_div(tokens, unit), ceil_div(capacity - tokens, refill), -1}
end
local need = cost * unit
if tokens < need then
  return {0, floor_div(tokens, unit), ceil_div(capacity - tokens, refill),
    ceil_div(need - tokens, refill)}
end
tokens = tokens - need
local reset = ceil_div(capacity - tokens, refill)
if consume then
  redis.call('HSET', key, 't', int(tokens), 'l', int(now))
  redis.call('PEXPIRE', key, ttl_ms(reset))
end
return {1, floor_div(tokens, unit), reset, 0}
