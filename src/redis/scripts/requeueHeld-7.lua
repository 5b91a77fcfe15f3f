--[[
  Give held parents back to pending with all their heat (their first mark is still in
  `since`): leases
  past their deadline (reap), retries whose backoff is over (promote), or a worker's own
  leases on shutdown (release).

  Input:
    KEYS[1] holding set (leases or delayed)  KEYS[2] claims  KEYS[3] pending
    KEYS[4] since  KEYS[5] dirty  KEYS[6] dirtyAt  KEYS[7] due
    ARGV[1] now (ms): members scored at or below it are due
    ARGV[2] limit: most members to requeue in this call
    ARGV[3..] optional pairs member, claim token: requeue exactly these (if the token matches)
              instead of the due ones

  Output: number of members requeued
]]
local now = ARGV[1]
local members = {}
if #ARGV > 2 then
  for i = 3, #ARGV, 2 do
    local record = redis.call('HGET', KEYS[2], ARGV[i])
    if record and string.sub(record, 1, #ARGV[i + 1] + 1) == ARGV[i + 1] .. '|' and redis.call('ZSCORE', KEYS[1], ARGV[i]) then
      members[#members + 1] = ARGV[i]
    end
  end
else
  members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
end
for _, member in ipairs(members) do
  local score, since, due = 1, now, nil
  local record = redis.call('HGET', KEYS[2], member)
  if record then
    local _, s, d = string.match(record, '^([^|]*)|([^|]*)|(.*)$')
    score = tonumber(s) or 1
    if d and d ~= '' then due = d end
  end
  local heat = redis.call('HGET', KEYS[5], member)
  if heat then
    score = score + tonumber(heat)
    local at = redis.call('HGET', KEYS[6], member)
    if at and tonumber(at) < tonumber(since) then since = at end
  end
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
  redis.call('HDEL', KEYS[5], member)
  redis.call('HDEL', KEYS[6], member)
  redis.call('ZINCRBY', KEYS[3], string.format('%.17g', score), member)
  redis.call('ZADD', KEYS[4], 'NX', since, member)
  if due then redis.call('ZADD', KEYS[7], 'NX', due, member) end
end
return #members
