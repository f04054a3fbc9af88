--[[
limits-core: fixed window (must agree with algorithms/fixed_window.py).

Its ancestor is the classic rate-limit script:

    local count = redis.call('INCR', KEYS[1])
    if count == 1 then
      redis.call('EXPIRE', KEYS[1], ARGV[1])
    end
    return count

It is still here (read the count, add the cost, set the expiry, reply), generalized as
follows:

1. Cost is applied only when it fits. The classic increments first and leaves the comparison
   to the caller, so every denied request still counts and a client hammering a full window
   keeps inflating it. Here the count is read first and increased by `cost` only when
   count + cost <= limit. A denied request writes nothing; a cost above the limit is denied
   with retry -1 ("never").
2. Microsecond precision, decided on stored time. In the classic the window IS the key's
   lifetime, in whole seconds, so a late expiry lengthens the window. Here the key is a hash
   holding the window start `s` (integer microseconds) and the count `n`: the window is
   [s, s + period), decided from `s`, and the TTL is only garbage collection, set with PEXPIRE
   rounded up to the millisecond.
3. The classic INCR survives as HINCRBY: a hit in a live window is HMGET, HINCRBY and a PTTL
   check (5.). A "<start>:<count>" string written with SET ... PX (one write that also re-arms
   the TTL) was measured too: it costs Redis more per call than HINCRBY + PTTL (SET with an
   expiry replaces the value object and rewrites the command for propagation), and it must
   parse and format numbers in Lua. The hash also lets an operator read the state with HGETALL.
4. The window opens on the first admitted hit (the classic's `count == 1`): a hit finding no
   live window writes s = now, n = cost and sets the expiry for the whole window.
5. A key found without a TTL is repaired. The classic sets EXPIRE only on the first hit, so a
   key that lost its TTL (a client that sent INCR and EXPIRE separately and died in between, a
   PERSIST, a restore) lives forever. Here any call that finds the key without a TTL gives it
   the TTL of its window; this is the one write a denied or peeking call may make, and it
   changes no decision.
6. The reply carries the whole decision {allowed, remaining, reset_after_us, retry_after_us},
   integers only, so Redis' conversion of Lua numbers to integer replies truncates nothing.
7. The clock is the server's TIME unless the limiter has a clock (see main.lua). Time never
   runs backwards for a key: a `now` before the window start is treated as the start.

Numbers sent to Redis are formatted with '%d': Lua's own number-to-string conversion would
print a microsecond timestamp in exponent notation and lose digits.

A refund lowers the live window's count, down to zero (the window keeps its start and its
TTL); a window that has ended has nothing to give back and is deleted.

Parameters: limit, period_us.
]]

local function fixed_window_decide(key, now, cost, a, i)
  local limit, period = tonumber(a[i]), tonumber(a[i + 1])
  local found = redis.call('HMGET', key, 's', 'n')
  local start, count, live, stored_left = now, 0, false, nil
  local s = tonumber(found[1])
  if s then
    if now < s then now = s end
    stored_left = s + period - now
    if stored_left > 0 then
      start, count, live = s, tonumber(found[2]), true
    end
  end
  local left = start + period - now
  if count + cost > limit then
    local reset, retry = 0, left
    if count > 0 then reset = left end
    if cost > limit then retry = -1 end
    return false, limit - count, reset, retry, false, stored_left
  end
  return true, limit - count - cost, left, 0, live, stored_left, left
end

local function fixed_window_commit(key, write, now, cost, a, i, live, stored_left, left)
  if write then
    if not live then
      -- The first admitted hit of a window: the classic `if count == 1 then EXPIRE`.
      redis.call('HSET', key, 's', string.format('%d', now), 'n', string.format('%d', cost))
      redis.call('PEXPIRE', key, px(left))
      return
    end
    redis.call('HINCRBY', key, 'n', string.format('%d', cost))
  end
  -- Repair (difference 5): the key exists but has no TTL.
  if stored_left and redis.call('PTTL', key) == -1 then
    redis.call('PEXPIRE', key, px(stored_left))
  end
end

local function fixed_window_refund(key, now, amount, a, i)
  local period = tonumber(a[i + 1])
  local found = redis.call('HMGET', key, 's', 'n')
  local s = tonumber(found[1])
  if not s then return end
  if now < s then now = s end
  local left = s + period - now
  if left <= 0 then
    redis.call('DEL', key)
    return
  end
  local count = tonumber(found[2]) - amount
  if count < 0 then count = 0 end
  redis.call('HSET', key, 'n', string.format('%d', count))
  redis.call('PEXPIRE', key, px(left))
end
