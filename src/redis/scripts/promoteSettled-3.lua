--[[
  Move parents whose quiet period is over (or whose maxWaitMs is reached) from `settling`
  to pending with their score.

  Input:
    KEYS[1] settling  KEYS[2] settleHeat  KEYS[3] pending
    ARGV[1] now (ms)
    ARGV[2] limit: most members moved in this call

  Output: number of members moved
]]
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #members == 0 then return 0 end
local scores = redis.call('HMGET', KEYS[2], unpack(members))
local args = {}
for i, member in ipairs(members) do
  args[#args + 1] = scores[i] or '1'
  args[#args + 1] = member
end
redis.call('ZADD', KEYS[3], unpack(args))
redis.call('ZREM', KEYS[1], unpack(members))
redis.call('HDEL', KEYS[2], unpack(members))
return #members
