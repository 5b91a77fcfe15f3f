--[[
  Give dead parents a fresh start: back to pending with the heat they had.

  Input:
    KEYS[1] dead  KEYS[2] deadInfo  KEYS[3] pending  KEYS[4] since
    ARGV[1] now (ms)
    ARGV[2] limit: most members to revive when no member is named
    ARGV[3..] optional members to revive; without them the oldest dead first

  Output: number of members revived
]]
local members
if #ARGV > 2 then
  members = {}
  for i = 3, #ARGV do members[#members + 1] = ARGV[i] end
else
  members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
end
local revived = 0
for _, member in ipairs(members) do
  if redis.call('ZREM', KEYS[1], member) == 1 then
    local score = 1
    local record = redis.call('HGET', KEYS[2], member)
    if record then score = tonumber(cjson.decode(record).score) or 1 end
    redis.call('HDEL', KEYS[2], member)
    redis.call('ZINCRBY', KEYS[3], string.format('%.17g', score), member)
    redis.call('ZADD', KEYS[4], 'NX', ARGV[1], member)
    revived = revived + 1
  end
end
return revived
