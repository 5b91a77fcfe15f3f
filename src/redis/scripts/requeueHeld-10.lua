--[[
  Give held parents back to pending with all their heat (their first mark is still in `since`):
  leases past their deadline (reap), retries whose backoff is over (promote), or a worker's own
  claims it will not run (release).

  Input:
    KEYS[1] holding set (leases or delayed)  KEYS[2] claims  KEYS[3] pending  KEYS[4] since
    KEYS[5] dirty  KEYS[6] dirtyAt  KEYS[7] due  KEYS[8] attempts  KEYS[9] dead  KEYS[10] deadInfo
    ARGV[1] now (ms, server time): members scored at or below it are due
    ARGV[2] limit: most members to requeue in this call
    ARGV[3] attempts allowed for a reaped lease (0: uncounted). A lease that expired is a
            recompute whose worker crashed or stalled; counting it keeps a parent that kills its
            worker every time from coming back forever: it is dead-lettered at the limit.
    ARGV[4..] optional pairs member, claim token: requeue exactly these (if the token matches
              and the member is still in the holding set) instead of the due ones

  Output: { requeued, dead-lettered }
]]
--- @include "score"

local now = tonumber(ARGV[1])
local maxAttempts = tonumber(ARGV[3])
local members = {}
if #ARGV > 3 then
  for i = 4, #ARGV, 2 do
    local member, token = ARGV[i], ARGV[i + 1]
    local record = redis.call('HGET', KEYS[2], member)
    if record and string.sub(record, 1, #token + 1) == token .. '|' and redis.call('ZSCORE', KEYS[1], member) then
      members[#members + 1] = member
    end
  end
else
  members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
end
local requeued, dead = 0, 0
for _, member in ipairs(members) do
  local score, due, since = nil, nil, now
  local record = redis.call('HGET', KEYS[2], member)
  if record then
    local s, d = string.match(record, '^[^|]*|([^|]*)|([^|]*)')
    score = tonumber(s)
    if d and d ~= '' then due = d end
  end
  score = score or 1
  local heat = redis.call('HGET', KEYS[5], member)
  if heat then
    score = score + tonumber(heat)
    local at = redis.call('HGET', KEYS[6], member)
    if at and tonumber(at) < since then since = tonumber(at) end
  end
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
  redis.call('HDEL', KEYS[5], member)
  redis.call('HDEL', KEYS[6], member)
  local attempts = 0
  if maxAttempts > 0 then attempts = redis.call('HINCRBY', KEYS[8], member, 1) end
  if maxAttempts > 0 and attempts >= maxAttempts then
    local first = redis.call('ZSCORE', KEYS[4], member)
    redis.call('ZREM', KEYS[4], member)
    redis.call('ZREM', KEYS[7], member)
    redis.call('HDEL', KEYS[8], member)
    redis.call('ZADD', KEYS[9], now, member)
    redis.call('HSET', KEYS[10], member, cjson.encode({
      error = 'LeaseExpired: its lease expired ' .. attempts .. ' times: the worker recomputing it crashed or stalled',
      attempts = attempts, score = score, since = first, at = now
    }))
    dead = dead + 1
  else
    -- Held parents are in no other set, so this adds the whole score once; a stray entry
    -- (written by hand) keeps its own tier and gains the heat only.
    restore(KEYS[3], member, score)
    redis.call('ZADD', KEYS[4], 'NX', since, member)
    if due then redis.call('ZADD', KEYS[7], 'NX', due, member) end
    requeued = requeued + 1
  end
end
return { requeued, dead }
