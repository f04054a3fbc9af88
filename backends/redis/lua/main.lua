--[[
One algorithm, one atomic step: `decide` and `commit` are the fragment's (see common.lua).

KEYS[1]  the key's state
ARGV     now_us | '' (the server's TIME), cost, mode, the algorithm's parameters; mode is
         '1' consume, '0' peek, or '2' refund: give `cost` back, then reply as a peek of 1
Reply    {allowed (1|0), remaining, reset_after_us, retry_after_us (-1 = never)}, integers
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
  refund(KEYS[1], now, cost, ARGV, 4)
  cost = 1
end
local ok, remaining, reset, retry, s1, s2, s3, s4 = decide(KEYS[1], now, cost, ARGV, 4)
commit(KEYS[1], ok and ARGV[3] == '1', now, cost, ARGV, 4, s1, s2, s3, s4)
if ok then return {1, remaining, reset, retry} end
return {0, remaining, reset, retry}
