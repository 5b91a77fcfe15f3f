--[[
  Which parents still wait for a recompute: pending, settling, held (leased, or waiting to
  retry, with or without marks set aside meanwhile) or dead. A parent in none of them has had
  every mark it received covered by an acknowledged recompute.

  Keys: epoch, pending, settling, claims, dead, dirty, leases, fence

  Args:
    ARGV[1] the epoch the answer must hold in ('' for any): when Redis lost its data since,
            an absent parent proves nothing
    ARGV[2..] members

  Output: -1 when the epoch differs; else the fence counter, then one flag per member: 1 busy,
          0 quiet
]]
local epoch, pending, settling, claims, dead, dirty, leases, fence = unpack(KEYS)
if ARGV[1] ~= '' and redis.call('GET', epoch) ~= ARGV[1] then return -1 end
local out = { redis.call('GET', fence) or '0' }
for i = 2, #ARGV do
  local m = ARGV[i]
  local busy = redis.call('ZSCORE', pending, m) or redis.call('ZSCORE', settling, m)
    or redis.call('HEXISTS', claims, m) == 1 or redis.call('ZSCORE', dead, m)
    or redis.call('HEXISTS', dirty, m) == 1 or redis.call('ZSCORE', leases, m)
  out[#out + 1] = busy and 1 or 0
end
return out
