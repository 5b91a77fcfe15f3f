--[[
  Acknowledge recomputed parents: end each lease whose claim token still matches, and put
  back to pending the heat of marks that arrived during the recompute.

  Input:
    KEYS[1] leases  KEYS[2] claims  KEYS[3] pending  KEYS[4] since
    KEYS[5] dirty   KEYS[6] dirtyAt KEYS[7] attempts
    ARGV[1..] triples: member, claim token, base (priority base of the member's score)

  Output: { acked, rearmed, lost } where lost counts leases that had expired and were
  given to another worker (their ack changes nothing).
]]
local acked, rearmed, lost = 0, 0, 0
for i = 1, #ARGV, 3 do
  local member = ARGV[i]
  local record = redis.call('HGET', KEYS[2], member)
  if record and cjson.decode(record).t == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], member)
    redis.call('HDEL', KEYS[2], member)
    redis.call('HDEL', KEYS[7], member)
    local heat = redis.call('HGET', KEYS[5], member)
    if heat then
      redis.call('ZINCRBY', KEYS[3], tonumber(ARGV[i + 2]) + tonumber(heat), member)
      redis.call('ZADD', KEYS[4], 'NX', redis.call('HGET', KEYS[6], member), member)
      redis.call('HDEL', KEYS[5], member)
      redis.call('HDEL', KEYS[6], member)
      rearmed = rearmed + 1
    end
    acked = acked + 1
  else
    lost = lost + 1
  end
end
return { acked, rearmed, lost }
