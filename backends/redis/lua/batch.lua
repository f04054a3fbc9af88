--[[
Many requests on one algorithm (with one set of parameters), each its own atomic step, in one
script: what a coalesced batch or a hit_many sends instead of one EVALSHA per request, so that
Redis parses one command and the client one reply. `decide` and `commit` are the fragment's
(see common.lua). The requests are decided in order, each seeing the effect of those before
it, at one server TIME for those without a time of their own.

KEYS[j]  request j's key (on a cluster, all in one slot)
ARGV     p, the algorithm's p parameters, then per request: now_us | '' (the server's TIME),
         cost, mode ('1' consume, '0' peek, '2' refund: give `cost` back, then reply as a
         peek of 1)
Reply    per request, in order: {allowed (1|0), remaining, reset_after_us, retry_after_us
         (-1 = never)}, or the error that request raised alone (a Lua error stops no other
         request: each runs under pcall, and a request that fails has written nothing,
         since a fragment writes only in `commit`, after its decision)
]]

local first = 2
local base = first + tonumber(ARGV[1])
local server_now = nil

local function one(key, now, cost, mode)
  if mode == '2' then
    refund(key, now, cost, ARGV, first)
    cost = 1
  end
  local ok, remaining, reset, retry, s1, s2, s3, s4 = decide(key, now, cost, ARGV, first)
  commit(key, ok and mode == '1', now, cost, ARGV, first, s1, s2, s3, s4)
  if ok then return {1, remaining, reset, retry} end
  return {0, remaining, reset, retry}
end

local replies = {}
for j = 1, #KEYS do
  local o = base + 3 * (j - 1)
  local now = tonumber(ARGV[o])
  if now then
    min_px = CLIENT_CLOCK_MIN_PX
  else
    if not server_now then
      local t = redis.call('TIME')
      server_now = t[1] * 1000000 + t[2]
    end
    now = server_now
    min_px = 1
  end
  local done, reply = pcall(one, KEYS[j], now, tonumber(ARGV[o + 1]), ARGV[o + 2])
  if done or (type(reply) == 'table' and reply.err) then
    replies[j] = reply  -- a decision, or an error reply as Redis made it
  else
    replies[j] = {err = tostring(reply)}  -- "WRONGTYPE ...", "OOM ...", a Lua error
  end
end
return replies
