--[[
  Move a parent type's rebuild cursor on, if no other process moved it first.

  Keys: rebuild
    (rebuild: HASH type -> last id marked, '' before the first)

  Args:
    ARGV[1] type  ARGV[2] cursor the caller started from  ARGV[3] new cursor, or '' with
    ARGV[4] = 'done' when the type is rebuilt

  Output: 1 moved, 0 another process got there first (or the rebuild was cancelled)
]]
local rebuild = unpack(KEYS)
if redis.call('HGET', rebuild, ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[4] == 'done' then
  redis.call('HDEL', rebuild, ARGV[1])
else
  redis.call('HSET', rebuild, ARGV[1], ARGV[3])
end
return 1
