--[[
  Which parents still wait for a recompute: pending, settling, held (leased, or waiting to
  retry, with or without marks set aside meanwhile) or dead. A parent in none of them has had
  every mark it received covered by an acknowledged recompute.

  Input:
    KEYS[1] epoch  KEYS[2] pending  KEYS[3] settling  KEYS[4] claims  KEYS[5] dead
    KEYS[6] dirty  KEYS[7] leases  KEYS[8] fence
    ARGV[1] the epoch the answer must hold in ('' for any): when Redis lost its data since,
            an absent parent proves nothing
    ARGV[2..] members

  Output: -1 when the epoch differs; else the fence counter, then one flag per member: 1 busy,
          0 quiet
]]
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local out = { redis.call('GET', KEYS[8]) or '0' }
for i = 2, #ARGV do
  local m = ARGV[i]
  local busy = redis.call('ZSCORE', KEYS[2], m) or redis.call('ZSCORE', KEYS[3], m)
    or redis.call('HEXISTS', KEYS[4], m) == 1 or redis.call('ZSCORE', KEYS[5], m)
    or redis.call('HEXISTS', KEYS[6], m) == 1 or redis.call('ZSCORE', KEYS[7], m)
  out[#out + 1] = busy and 1 or 0
end
return out
