--[[
  Claim parents read by the caller with ZREVRANGE: a checked ZREM per member decides who
  owns it, and the winner records a lease.

  Input:
    KEYS[1] pending  KEYS[2] since  KEYS[3] leases  KEYS[4] claims  KEYS[5] attempts
    ARGV[1] lease deadline (ms)
    ARGV[2] claim token
    ARGV[3..] members, hottest first

  Output: flat array, per claimed member: member, score, since ('' if unknown), attempts so far.
  A member missing from the output lost the race to another worker.
]]
local out = {}
for i = 3, #ARGV do
  local member = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[1], member)
  if redis.call('ZREM', KEYS[1], member) == 1 then
    local since = redis.call('ZSCORE', KEYS[2], member)
    redis.call('ZREM', KEYS[2], member)
    redis.call('ZADD', KEYS[3], ARGV[1], member)
    redis.call('HSET', KEYS[4], member, cjson.encode({ t = ARGV[2], s = score, f = since or '' }))
    out[#out + 1] = member
    out[#out + 1] = score
    out[#out + 1] = since or ''
    out[#out + 1] = redis.call('HGET', KEYS[5], member) or '0'
  end
end
return out
