--[[
  Renew the leases a worker holds, all of them in one call: each one still owned (its claim
  record carries the token and it is still leased) gets the new deadline.

  Keys: leases, claims

  Args:
    ARGV[1] new deadline (ms, server time)
    ARGV[2..] pairs: member, claim token; the caller bounds their number

  Output: the 1-based indexes (among the pairs) of the claims no longer owned: their lease
          expired and was given back, or passed to another worker. Their recomputes must stop.
]]
local leases, claims = unpack(KEYS)
--- @include "claimRecord"

local lost = {}
local n = 0
for i = 2, #ARGV, 2 do
  n = n + 1
  local member, token = ARGV[i], ARGV[i + 1]
  if claimedBy(redis.call('HGET', claims, member), token) and redis.call('ZSCORE', leases, member) then
    redis.call('ZADD', leases, 'XX', ARGV[1], member)
  else
    lost[#lost + 1] = n
  end
end
return lost
