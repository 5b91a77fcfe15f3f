--[[
  Remove dead parents for good, with every trace of them: their dead-letter record, attempts and
  mark generations. A named member that is not dead is left alone.

  Input:
    KEYS[1] dead  KEYS[2] deadInfo  KEYS[3] attempts  KEYS[4] generations  KEYS[5] ackedGens
    ARGV[1] limit: most members to remove when none is named (the oldest dead first)
    ARGV[2..] optional members to remove (the caller bounds their number)

  Output: number of members removed
]]
local members
if #ARGV > 1 then
  members = {}
  for i = 2, #ARGV do members[#members + 1] = ARGV[i] end
else
  members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
end
local removed = {}
for _, member in ipairs(members) do
  if redis.call('ZREM', KEYS[1], member) == 1 then removed[#removed + 1] = member end
end
if #removed > 0 then
  for key = 2, 5 do redis.call('HDEL', KEYS[key], unpack(removed)) end
end
return #removed
