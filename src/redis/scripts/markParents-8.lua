--[[
  Mark parents: add heat to each, in one call for a whole transaction.

  Input:
    KEYS[1] pending   KEYS[2] since    KEYS[3] leases   KEYS[4] delayed
    KEYS[5] dirty     KEYS[6] dirtyAt  KEYS[7] dead     KEYS[8] deadInfo
    ARGV[1] now (ms)
    ARGV[2..] triples: member, increment, base (priority base of the member's score)

  A parent that is leased or waiting to retry is held: its heat goes to `dirty` and comes
  back to `pending` when the hold ends, so it is never claimed twice at once. A dead
  parent gets a fresh start.

  Output: number of members marked
]]
local now = ARGV[1]
local marked = 0
for i = 2, #ARGV, 3 do
  local member = ARGV[i]
  local inc = tonumber(ARGV[i + 1])
  local base = tonumber(ARGV[i + 2])
  if redis.call('ZREM', KEYS[7], member) == 1 then
    redis.call('HDEL', KEYS[8], member)
  end
  if redis.call('ZSCORE', KEYS[3], member) or redis.call('ZSCORE', KEYS[4], member) then
    redis.call('HINCRBY', KEYS[5], member, inc)
    redis.call('HSETNX', KEYS[6], member, now)
  else
    if redis.call('ZSCORE', KEYS[1], member) then
      redis.call('ZINCRBY', KEYS[1], inc, member)
    else
      redis.call('ZADD', KEYS[1], base + inc, member)
    end
    redis.call('ZADD', KEYS[2], 'NX', now, member)
  end
  marked = marked + 1
end
return marked
