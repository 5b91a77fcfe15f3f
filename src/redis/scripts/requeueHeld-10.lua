--[[
  Give held parents back to pending with all their heat (their first mark is still in `since`):
  leases past their deadline (reap), retries whose backoff is over (promote), or a worker's own
  claims it will not run (release).

  Keys: held, claims, pending, since, dirty, dirtyAt, due, attempts, dead, deadInfo
    (held: the set they are held in, `leases` or `delayed`, bound by the caller)

  Args:
    ARGV[1] now (ms, server time): members scored at or below it are due
    ARGV[2] limit: most members to requeue in this call
    ARGV[3] attempts allowed for a reaped lease (0: uncounted). A lease that expired is a
            recompute whose worker crashed or stalled; counting it keeps a parent that kills its
            worker every time from coming back forever: it is dead-lettered at the limit.
    ARGV[4..] optional pairs member, claim token: requeue exactly these (if the token matches
              and the member is still held) instead of the due ones

  Output: { requeued, dead-lettered }
]]
local held, claims, pending, since, dirty, dirtyAt, due, attempts, dead, deadInfo = unpack(KEYS)
--- @include "score"
--- @include "claimRecord"

local now = tonumber(ARGV[1])
local maxAttempts = tonumber(ARGV[3])
local members = {}
if #ARGV > 3 then
  for i = 4, #ARGV, 2 do
    local member, token = ARGV[i], ARGV[i + 1]
    if claimedBy(redis.call('HGET', claims, member), token) and redis.call('ZSCORE', held, member) then
      members[#members + 1] = member
    end
  end
else
  members = redis.call('ZRANGEBYSCORE', held, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
end
local requeued, deadLettered = 0, 0
for _, member in ipairs(members) do
  local score, dueAt, first = nil, nil, now
  local record = redis.call('HGET', claims, member)
  if record then
    local _, claimed, d = claimFields(record)
    score = claimed
    if d ~= '' then dueAt = d end
  end
  score = score or 1
  local heat = redis.call('HGET', dirty, member)
  if heat then
    score = score + tonumber(heat)
    local at = redis.call('HGET', dirtyAt, member)
    if at and tonumber(at) < first then first = tonumber(at) end
  end
  redis.call('ZREM', held, member)
  redis.call('HDEL', claims, member)
  redis.call('HDEL', dirty, member)
  redis.call('HDEL', dirtyAt, member)
  local tries = 0
  if maxAttempts > 0 then tries = redis.call('HINCRBY', attempts, member, 1) end
  if maxAttempts > 0 and tries >= maxAttempts then
    local since0 = redis.call('ZSCORE', since, member)
    redis.call('ZREM', since, member)
    redis.call('ZREM', due, member)
    redis.call('HDEL', attempts, member)
    redis.call('ZADD', dead, now, member)
    redis.call('HSET', deadInfo, member, cjson.encode({
      error = 'LeaseExpired: its lease expired ' .. tries .. ' times: the worker recomputing it crashed or stalled',
      attempts = tries, score = score, since = since0, at = now
    }))
    deadLettered = deadLettered + 1
  else
    -- Held parents are in no other set, so this adds the whole score once; a stray entry
    -- (written by hand) keeps its own tier and gains the heat only.
    restore(pending, member, score)
    redis.call('ZADD', since, 'NX', first, member)
    if dueAt then redis.call('ZADD', due, 'NX', dueAt, member) end
    requeued = requeued + 1
  end
end
return { requeued, deadLettered }
