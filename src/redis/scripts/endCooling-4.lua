--[[
  End the minimum interval of parents waiting one out: a drain that finishes what it can moves
  them from `settling` to pending at once, and unlists them from `cooling`. A member listed
  there but no longer settling (claimed since, or promoted) is only unlisted.

  Keys: cooling, settling, settleHeat, pending

  Args:
    ARGV[1..] members (read from `cooling` by the caller, which bounds their number)

  Output: per member, 1 when it was settling and is pending now, else 0
]]
local cooling, settling, settleHeat, pending = unpack(KEYS)
--- @include "unsettle"

local moved = {}
for i, member in ipairs(ARGV) do
  moved[i] = unsettle(settling, settleHeat, pending, member) and 1 or 0
end
redis.call('ZREM', cooling, unpack(ARGV))
return moved
