--[[
  Move parents from `settling` to pending now, ending their quiet period early: a caller wants
  them recomputed at once (`fresh({ now: true })`, or a drain ending with parents its own
  recomputes marked up their chains).

  Keys: settling, settleHeat, pending

  Args:
    ARGV[1..] members (the caller bounds their number)

  Output: how many were settling and moved
]]
local settling, settleHeat, pending = unpack(KEYS)
--- @include "score"

local moved = 0
for _, member in ipairs(ARGV) do
  if redis.call('ZSCORE', settling, member) then
    local score = redis.call('HGET', settleHeat, member)
    redis.call('ZREM', settling, member)
    redis.call('HDEL', settleHeat, member)
    restore(pending, member, tonumber(score) or 1)
    moved = moved + 1
  end
end
return moved
