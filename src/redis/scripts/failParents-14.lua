--[[
  Record failed recomputes: schedule a retry, or dead-letter the parent after its last attempt.

  Keys: leases, claims, delayed, attempts, dead, deadInfo, pending, since, dirty, dirtyAt,
        due, settling, settleHeat, policy

  Args:
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
local leases, claims, delayed, attempts, dead, deadInfo, pending, since, dirty, dirtyAt,
      due, settling, settleHeat, policy = unpack(KEYS)
--- @include "markOne"
--- @include "claimRecord"

local K = {
  pending = pending, since = since, claims = claims, dirty = dirty, dirtyAt = dirtyAt, dead = dead,
  deadInfo = deadInfo, due = due, settling = settling, settleHeat = settleHeat, policy = policy,
}
local now = tonumber(ARGV[1])
local retried, deadLettered, superseded = 0, 0, 0
for i = 2, #ARGV, 5 do
  local member, token, retryAt, base = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 4])
  local record = redis.call('HGET', claims, member)
  if claimedBy(record, token) and redis.call('ZREM', leases, member) == 1 then
    local tries = redis.call('HINCRBY', attempts, member, 1)
    if retryAt >= 0 then
      redis.call('ZADD', delayed, retryAt, member)
      retried = retried + 1
    else
      local _, claimed = claimFields(record)
      local score = claimed or base
      redis.call('HDEL', claims, member)
      redis.call('HDEL', attempts, member)
      local heat = redis.call('HGET', dirty, member)
      if heat then
        local first = tonumber(redis.call('HGET', dirtyAt, member)) or now
        redis.call('HDEL', dirty, member)
        redis.call('HDEL', dirtyAt, member)
        markOne(K, member, heatOf(score) + tonumber(heat), base, now, first)
        retried = retried + 1
      else
        -- Dead parents are not waiting for a recompute: out of `since` until marked again.
        local first = redis.call('ZSCORE', since, member)
        redis.call('ZREM', since, member)
        redis.call('ZREM', due, member)
        redis.call('ZADD', dead, now, member)
        redis.call('HSET', deadInfo, member, cjson.encode({
          error = ARGV[i + 3], attempts = tries, score = score, since = first, at = now
        }))
        deadLettered = deadLettered + 1
      end
    end
  else
    superseded = superseded + 1
    markOne(K, member, 1, base, now, now)
  end
end
return { retried, deadLettered, superseded }
