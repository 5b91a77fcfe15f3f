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
--- @include "unsettle"

local moved = 0
for _, member in ipairs(ARGV) do
  if unsettle(settling, settleHeat, pending, member) then moved = moved + 1 end
end
return moved
