--[[
  End the minimum interval of parents waiting one out: a drain that finishes what it can moves
  them from `settling` to pending at once. A member listed in `cooling` but no longer settling
  (claimed since, or promoted) is only unlisted.

  Keys: cooling, settling, settleHeat, pending

  Args:
    ARGV[1] most members handled by this call

  Output: { moved, 1 when members are left in `cooling` (call again) else 0 }
]]
local cooling, settling, settleHeat, pending = unpack(KEYS)
--- @include "unsettle"

local members = redis.call('ZRANGE', cooling, 0, tonumber(ARGV[1]) - 1)
if #members == 0 then return { 0, 0 } end
local moved = 0
for _, member in ipairs(members) do
  if unsettle(settling, settleHeat, pending, member) then moved = moved + 1 end
end
redis.call('ZREM', cooling, unpack(members))
return { moved, redis.call('EXISTS', cooling) }
