--[[
limits-core: what every algorithm fragment may use. The scripts are assembled from fragments
by backends/redis/_scripts.py: this file, then one `<kind>.lua` per algorithm, then a main
(main.lua for one algorithm, policy.lua for several).

A fragment `<kind>.lua` defines two local functions:

  <kind>_decide(key, now, cost, a, i)
      -> allowed, remaining, reset_after_us, retry_after_us, s1, s2, s3, s4
    Reads the state at `key` and decides a request of `cost` at `now` (integer microseconds)
    exactly as the algorithm's step() does; writes nothing. The algorithm's parameters are
    a[i], a[i + 1]... (a is ARGV). s1..s4 are the fragment's own, for its commit.

  <kind>_commit(key, write, now, cost, a, i, s1, s2, s3, s4)
    Called once after every decision of the script was made. `write` is true when the
    request is admitted (by every limit of a policy) and consumes: store the new state and
    its TTL. Otherwise write nothing but, at most, a TTL on a key found without one.

  <kind>_refund(key, now, amount, a, i)
    Gives `amount` back to the state at `key` exactly as the algorithm's refund() does (never
    creating a key): stores the new state with the TTL of its expiry, or deletes the key when
    refund() leaves no state. The main then decides a peek of cost 1 on what it left.

Numbers sent to Redis go through string.format('%d'): Lua's own number-to-string conversion
(and Redis' for number arguments) can print a microsecond timestamp in exponent notation.
]]

-- The shortest TTL a write sets, in milliseconds: 1 (PEXPIRE 0 would delete the key), or
-- CLIENT_CLOCK_MIN_PX when the limiter sends its own clock (the main sets it). TTLs are real
-- time; a limiter's clock may be virtual (a simulation, a test, `limits-core verify`), where a
-- few microseconds of a window may be left while the next call is milliseconds of real time
-- away. TTLs only reclaim memory, so letting such a key outlive its use by under a second
-- keeps the decisions those calls expect.
local CLIENT_CLOCK_MIN_PX = 1000
local min_px = 1

-- A PX argument: `us` in milliseconds rounded up, at least `min_px`.
-- `us / 1000` is exact enough: below 2**53 the quotient cannot round across an integer.
local function px(us)
  local ms = math.ceil(us / 1000)
  if ms < min_px then ms = min_px end
  return string.format('%d', ms)
end

-- Exact integer quotients of non-negative integers below 2**53: math.fmod is exact, so these
-- are too (a rounded a / b could land on the wrong side of an integer).
local function floor_div(a, b)
  return (a - math.fmod(a, b)) / b
end

local function ceil_div(a, b)
  local r = math.fmod(a, b)
  local q = (a - r) / b
  if r > 0 then q = q + 1 end
  return q
end

-- a mod b with the sign of b (Python's %), exact for any integer a below 2**53 in magnitude.
local function floor_mod(a, b)
  local r = math.fmod(a, b)
  if r < 0 then r = r + b end
  return r
end
