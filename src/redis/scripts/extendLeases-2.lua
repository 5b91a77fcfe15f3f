--[[
  Renew the leases a worker holds, all of them in one call: each one still owned (its claim
  record carries the token and it is still leased) gets the new deadline.

  Input:
    KEYS[1] leases  KEYS[2] claims
    ARGV[1] new deadline (ms, server time)
    ARGV[2..] pairs: member, claim token; the caller bounds their number

  Output: the 1-based indexes (among the pairs) of the claims no longer owned: their lease
          expired and was given back, or passed to another worker. Their recomputes must stop.
]]
local lost = {}
local n = 0
for i = 2, #ARGV, 2 do
  n = n + 1
  local member, token = ARGV[i], ARGV[i + 1]
  local record = redis.call('HGET', KEYS[2], member)
  local owned = record and string.sub(record, 1, #token + 1) == token .. '|'
    and redis.call('ZSCORE', KEYS[1], member)
  if owned then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], member)
  else
    lost[#lost + 1] = n
  end
end
return lost
