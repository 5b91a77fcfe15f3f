--[[
  Record failed recomputes: schedule a retry, or dead-letter the parent after its last attempt.

  Input:
    KEYS[1] leases  KEYS[2] claims   KEYS[3] delayed  KEYS[4] attempts  KEYS[5] dead
    KEYS[6] deadInfo KEYS[7] pending KEYS[8] since    KEYS[9] dirty     KEYS[10] dirtyAt
    KEYS[11] due
    ARGV[1] now (ms)
    ARGV[2..] quadruples: member, claim token, retry at (ms, or -1 for no more attempts), error

  A parent to be retried keeps its claim record (heat, due) while it waits in
  `delayed`, held from other workers. A parent out of attempts that was marked during its
  last attempt has changed since: it goes back to pending with a fresh start instead of to
  the dead set.

  Output: { retried, dead, lost }
]]
local now = ARGV[1]
local retried, dead, lost = 0, 0, 0
for i = 2, #ARGV, 4 do
  local member, retryAt = ARGV[i], tonumber(ARGV[i + 2])
  local record = redis.call('HGET', KEYS[2], member)
  local token, score, due
  if record then token, score, due = string.match(record, '^([^|]*)|([^|]*)|(.*)$') end
  if token == ARGV[i + 1] and redis.call('ZREM', KEYS[1], member) == 1 then
    local attempts = redis.call('HINCRBY', KEYS[4], member, 1)
    if retryAt >= 0 then
      redis.call('ZADD', KEYS[3], retryAt, member)
      retried = retried + 1
    else
      redis.call('HDEL', KEYS[2], member)
      redis.call('HDEL', KEYS[4], member)
      local heat = redis.call('HGET', KEYS[9], member)
      if heat then
        redis.call('ZINCRBY', KEYS[7], string.format('%.17g', tonumber(score) + tonumber(heat)), member)
        redis.call('ZADD', KEYS[8], 'NX', redis.call('HGET', KEYS[10], member), member)
        if due and due ~= '' then redis.call('ZADD', KEYS[11], 'NX', due, member) end
        redis.call('HDEL', KEYS[9], member)
        redis.call('HDEL', KEYS[10], member)
        retried = retried + 1
      else
        -- Dead parents are not waiting for a recompute: out of `since` until marked again.
        local since = redis.call('ZSCORE', KEYS[8], member)
        redis.call('ZREM', KEYS[8], member)
        redis.call('ZADD', KEYS[5], now, member)
        redis.call('HSET', KEYS[6], member, cjson.encode({
          error = ARGV[i + 3], attempts = attempts, score = score, since = since, at = tonumber(now)
        }))
        dead = dead + 1
      end
    end
  else
    lost = lost + 1
  end
end
return { retried, dead, lost }
