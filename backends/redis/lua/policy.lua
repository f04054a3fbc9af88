--[[
A policy: several algorithms on one key, one atomic step, all or nothing
(must agree with limits_core/policy.py). DECIDE, COMMIT and REFUND map each kind to its
fragment's functions (see common.lua); _scripts.py defines them above this main.

Every component's state is read and decided first, at one `now`; then, only if every component
admits the request and it consumes, every component writes its new state. A request denied by
one limit consumes from none (a component may still give a TTL to a key found without one).

KEYS[j]  component j's state; every key carries the same hash tag (one cluster slot)
ARGV     now_us | '' (the server's TIME), cost, mode ('1' consume, '0' peek, '2' refund:
         give `cost` back to every component, then decide as a peek of 1), then per
         component: its kind, the number n of its parameters, its n parameters
Reply    4 integers per component, in order:
         allowed (1|0), remaining, reset_after_us, retry_after_us (-1 = never)
]]

local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = t[1] * 1000000 + t[2]
else
  min_px = CLIENT_CLOCK_MIN_PX
end
local cost = tonumber(ARGV[2])
if ARGV[3] == '2' then
  local i = 4
  for j = 1, #KEYS do
    REFUND[ARGV[i]](KEYS[j], now, cost, ARGV, i + 2)
    i = i + 2 + tonumber(ARGV[i + 1])
  end
  cost = 1
end
local reply, kinds, firsts, saved = {}, {}, {}, {}
local admitted = true
local i = 4
for j = 1, #KEYS do
  local kind, first = ARGV[i], i + 2
  local ok, remaining, reset, retry, s1, s2, s3, s4 = DECIDE[kind](KEYS[j], now, cost, ARGV, first)
  local r = 4 * (j - 1)
  if ok then reply[r + 1] = 1 else reply[r + 1] = 0; admitted = false end
  reply[r + 2], reply[r + 3], reply[r + 4] = remaining, reset, retry
  saved[r + 1], saved[r + 2], saved[r + 3], saved[r + 4] = s1, s2, s3, s4
  kinds[j], firsts[j] = kind, first
  i = first + tonumber(ARGV[i + 1])
end
local write = admitted and ARGV[3] == '1'
for j = 1, #KEYS do
  local r = 4 * (j - 1)
  COMMIT[kinds[j]](KEYS[j], write, now, cost, ARGV, firsts[j],
    saved[r + 1], saved[r + 2], saved[r + 3], saved[r + 4])
end
return reply
