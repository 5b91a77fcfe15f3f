--[[
  Record failed recomputes: schedule a retry, or dead-letter the parent after its last attempt.

  Input:
    KEYS[1] leases    KEYS[2] claims     KEYS[3] delayed   KEYS[4] attempts
    KEYS[5] dead      KEYS[6] deadInfo   KEYS[7] pending   KEYS[8] since
    KEYS[9] dirty     KEYS[10] dirtyAt   KEYS[11] due      KEYS[12] settling
    KEYS[13] settleHeat KEYS[14] policy
    ARGV[1] now (ms)
    ARGV[2..] quintuples: member, claim token, retry at (ms, or -1 for no more attempts),
              error, priority base

  - A parent to be retried keeps its claim record (heat, due) while it waits in `delayed`, held
    from other workers; marks meanwhile join the retry.
  - A parent out of attempts that was marked during its last attempt has changed since: it gets
    a fresh start (back through markOne with all its heat) instead of the dead set.
  - A superseded claim (its lease passed on) changes nothing of the current claim; like a late
    ack it adds one mark, since a failed recompute may have written part of its work late.

  Output: { retried, dead, superseded }
]]
--- @include "markOne"

local K = {
  pending = KEYS[7], since = KEYS[8], claims = KEYS[2], dirty = KEYS[9], dirtyAt = KEYS[10],
  dead = KEYS[5], deadInfo = KEYS[6], due = KEYS[11], settling = KEYS[12], settleHeat = KEYS[13],
  policy = KEYS[14],
}
local now = tonumber(ARGV[1])
local retried, dead, superseded = 0, 0, 0
for i = 2, #ARGV, 5 do
  local member, token, retryAt, base = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 4])
  local record = redis.call('HGET', KEYS[2], member)
  if record and string.sub(record, 1, #token + 1) == token .. '|'
      and redis.call('ZREM', KEYS[1], member) == 1 then
    local attempts = redis.call('HINCRBY', KEYS[4], member, 1)
    if retryAt >= 0 then
      redis.call('ZADD', KEYS[3], retryAt, member)
      retried = retried + 1
    else
      local score = tonumber(string.match(record, '^[^|]*|([^|]*)|')) or base
      redis.call('HDEL', KEYS[2], member)
      redis.call('HDEL', KEYS[4], member)
      local heat = redis.call('HGET', KEYS[9], member)
      if heat then
        local first = tonumber(redis.call('HGET', KEYS[10], member)) or now
        redis.call('HDEL', KEYS[9], member)
        redis.call('HDEL', KEYS[10], member)
        markOne(K, member, heatOf(score) + tonumber(heat), base, now, first)
        retried = retried + 1
      else
        -- Dead parents are not waiting for a recompute: out of `since` until marked again.
        local since = redis.call('ZSCORE', KEYS[8], member)
        redis.call('ZREM', KEYS[8], member)
        redis.call('ZREM', KEYS[11], member)
        redis.call('ZADD', KEYS[5], now, member)
        redis.call('HSET', KEYS[6], member, cjson.encode({
          error = ARGV[i + 3], attempts = attempts, score = score, since = since, at = now
        }))
        dead = dead + 1
      end
    end
  else
    superseded = superseded + 1
    markOne(K, member, 1, base, now, now)
  end
end
return { retried, dead, superseded }
