--[[
  Move a parent type's rebuild cursor on, if no other process moved it first.

  Input:
    KEYS[1] rebuild (HASH type -> last id marked, '' before the first)
    ARGV[1] type  ARGV[2] cursor the caller started from  ARGV[3] new cursor, or '' with
    ARGV[4] = 'done' when the type is rebuilt

  Output: 1 moved, 0 another process got there first (or the rebuild was cancelled)
]]
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[4] == 'done' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
return 1
