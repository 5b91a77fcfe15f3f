--[[
  Move one parent from `settling` to pending now, ending its quiet period early (a caller wants
  it recomputed at once).

  Input:
    KEYS[1] settling  KEYS[2] settleHeat  KEYS[3] pending
    ARGV[1] member

  Output: 1 moved, 0 it was not settling
]]
--- @include "score"

local score = redis.call('HGET', KEYS[2], ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
restore(KEYS[3], ARGV[1], tonumber(score) or 1)
return 1
