--[[
limits-core: fixed window, one atomic step (must agree with algorithms/fixed_window.py).

Its ancestor is the classic rate-limit script:

    local count = redis.call('INCR', KEYS[1])
    if count == 1 then
      redis.call('EXPIRE', KEYS[1], ARGV[1])
    end
    return count

It is still here (read the count, increment it, set the expiry when the window opens, reply),
generalized as follows:

1. Cost is applied only when it fits. The classic increments first and leaves the comparison
   to the caller, so every denied request still counts and a client hammering a full window
   keeps inflating it. Here the count is read first and increased by `cost` (HINCRBY, the
   classic INCR) only when count + cost <= limit. A denied request writes nothing; a cost
   above the limit is denied with retry -1 ("never").
2. Microsecond precision, decided on stored time. In the classic the window IS the key's
   lifetime, in whole seconds, so a late expiry lengthens the window. Here the key is a hash
   holding the window start `s` (integer microseconds) and the count `n`: the window is
   [s, s + period), decided from `s`, and the TTL is only garbage collection, set with PEXPIRE
   rounded up to the millisecond. A hash rather than a "start:count" string keeps the classic
   INCR (HINCRBY, no parsing and re-formatting of the count on every hit) and lets an operator
   read the state with HGETALL.
3. The window opens on the first admitted hit (the classic's `count == 1`): a hit finding no
   live window writes s = now, n = cost and sets the expiry for the whole window.
4. A key found without a TTL is repaired. The classic sets EXPIRE only on the first hit, so a
   key that lost its TTL (a client that sent INCR and EXPIRE separately and died in between, a
   PERSIST, a restore) lives forever. Here any call that finds the key without a TTL gives it
   the TTL of its window; this is the one write a denied or peeking call may make, and it
   changes no decision.
5. The reply carries the whole decision: {allowed, remaining, reset_after_us, retry_after_us},
   integers only, so Redis' conversion of Lua numbers to integer replies truncates nothing.
6. The clock: ARGV[1] is the limiter's time in microseconds, or empty (or negative) to use the
   server's TIME, so app servers with skewed clocks agree. Time never runs backwards for a key:
   a `now` before the window start is treated as the start.
7. Peek: ARGV[3] = '0' computes the same decision and writes nothing.

Numbers sent to Redis are formatted with '%d': Lua's own number-to-string conversion would
print a microsecond timestamp in exponent notation and lose digits.

KEYS[1]  the window hash {s = start_us, n = count}
ARGV     now_us | '', cost, consume ('1' | '0'), limit, period_us
Reply    {allowed (1|0), remaining, reset_after_us, retry_after_us (-1 = never)}
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

local function int(x)
  return string.format('%d', x)
end

-- A TTL in milliseconds: `us` rounded up, at least 1 (PEXPIRE 0 would delete the key).
local function ttl_ms(us)
  local r = math.fmod(us, 1000)
  local ms = (us - r) / 1000
  if r > 0 then ms = ms + 1 end
  if ms < 1 then ms = 1 end
  return int(ms)
end

local found = redis.call('HMGET', key, 's', 'n')
local start, count = tonumber(found[1]), tonumber(found[2])
local exists = start ~= nil and count ~= nil
local stored_end = 0
if exists then
  stored_end = start + period
  if now < start then
    now = start
  elseif now - start >= period then
    start, count = now, 0
  end
else
  start, count = now, 0
end

-- Repair (difference 4): the key exists but has no TTL.
local function repair()
  if exists and redis.call('PTTL', key) == -1 then
    redis.call('PEXPIRE', key, ttl_ms(stored_end - now))
  end
end

local left = start + period - now
local reset = 0
if count > 0 then reset = left end
if cost > limit then
  repair()
  return {0, limit - count, reset, -1}
end
if count + cost > limit then
  repair()
  return {0, limit - count, reset, left}
end
if consume then
  if count == 0 then
    -- First admitted hit of a window: the classic `if count == 1 then EXPIRE`.
    redis.call('HSET', key, 's', int(start), 'n', int(cost))
    redis.call('PEXPIRE', key, ttl_ms(left))
  else
    redis.call('HINCRBY', key, 'n', int(cost))
    repair()
  end
else
  repair()
end
return {1, limit - count - cost, left, 0}
