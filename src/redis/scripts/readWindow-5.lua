--[[
  Read the next window to claim: first move parents whose quiet period (or minimum interval) is
  over from `settling` to pending (and unlist ended intervals from `cooling`), then return the
  overdue parents (past their maxWaitMs, most overdue first) and the hottest pending ones.
  Nothing is claimed here: the claim's checked ZREM decides, and another worker may take any of
  these first.

  Keys: settling, settleHeat, pending, due, cooling

  Args:
    ARGV[1] now (ms, server time)
    ARGV[2] size: most members returned
    ARGV[3] offset: rank in pending to start the hottest ones at (workers that meet at the top
            spread out)

  Output: flat array: number of overdue members k, then k members, then pairs member, score of
          the hottest (ZREVRANGE ... WITHSCORES)
]]
local settling, settleHeat, pending, due, cooling = unpack(KEYS)
--- @include "score"

local now, size, offset = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', settling) == 1 then
  local ready = redis.call('ZRANGEBYSCORE', settling, '-inf', now, 'LIMIT', 0, size)
  if #ready > 0 then
    local scores = redis.call('HMGET', settleHeat, unpack(ready))
    for i, member in ipairs(ready) do
      restore(pending, member, tonumber(scores[i]) or 1)
    end
    redis.call('ZREM', settling, unpack(ready))
    redis.call('HDEL', settleHeat, unpack(ready))
  end
end
if redis.call('EXISTS', cooling) == 1 then redis.call('ZREMRANGEBYSCORE', cooling, '-inf', now) end
local out = { 0 }
if redis.call('EXISTS', due) == 1 then
  local overdue = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, size)
  out[1] = #overdue
  for _, member in ipairs(overdue) do out[#out + 1] = member end
end
local rest = size - out[1]
if rest > 0 then
  local top = redis.call('ZREVRANGE', pending, offset, offset + rest - 1, 'WITHSCORES')
  for _, v in ipairs(top) do out[#out + 1] = v end
end
return out
