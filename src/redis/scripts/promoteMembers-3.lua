--[[
  Move parents from `settling` to pending now, ending their quiet period early: a caller wants
  them recomputed at once (`fresh({ now: true })`, or a drain ending with parents its own
  recomputes marked up their chains).

  Input:
    KEYS[1] settling  KEYS[2] settleHeat  KEYS[3] pending
    ARGV[1..] members (the caller bounds their number)

  Output: how many were settling and moved
]]
--- @include "score"

local moved = 0
for _, member in ipairs(ARGV) do
  if redis.call('ZSCORE', KEYS[1], member) then
    local score = redis.call('HGET', KEYS[2], member)
    redis.call('ZREM', KEYS[1], member)
    redis.call('HDEL', KEYS[2], member)
    restore(KEYS[3], member, tonumber(score) or 1)
    moved = moved + 1
  end
end
return moved
