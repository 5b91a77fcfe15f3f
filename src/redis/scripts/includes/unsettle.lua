--[[
  Ends a settling parent's wait (its quiet period or its minimum interval) at once: back to
  pending with the score it waits with.
]]
--- @include "score"

-- True when `member` was settling and is pending now.
local function unsettle(settling, settleHeat, pending, member)
  if not redis.call('ZSCORE', settling, member) then return false end
  local score = redis.call('HGET', settleHeat, member)
  redis.call('ZREM', settling, member)
  redis.call('HDEL', settleHeat, member)
  restore(pending, member, tonumber(score) or 1)
  return true
end
