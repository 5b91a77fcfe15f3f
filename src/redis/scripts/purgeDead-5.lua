--[[
  Remove dead parents for good, with every trace of them: their dead-letter record, attempts and
  mark generations. A named member that is not dead is left alone.

  Keys: dead, deadInfo, attempts, generations, ackedGens

  Args:
    ARGV[1] limit: most members to remove when none is named (the oldest dead first)
    ARGV[2..] optional members to remove (the caller bounds their number)

  Output: number of members removed
]]
local dead, deadInfo, attempts, generations, ackedGens = unpack(KEYS)
local members
if #ARGV > 1 then
  members = {}
  for i = 2, #ARGV do members[#members + 1] = ARGV[i] end
else
  members = redis.call('ZRANGE', dead, 0, tonumber(ARGV[1]) - 1)
end
local removed = {}
for _, member in ipairs(members) do
  if redis.call('ZREM', dead, member) == 1 then removed[#removed + 1] = member end
end
if #removed > 0 then
  for _, key in ipairs({ deadInfo, attempts, generations, ackedGens }) do redis.call('HDEL', key, unpack(removed)) end
end
return #removed
