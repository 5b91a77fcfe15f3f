--[[
  Acknowledge recomputed parents: end each lease whose claim token still matches, and put
  back the heat of marks that arrived during the recompute.

  Input:
    KEYS[1] leases   KEYS[2] claims   KEYS[3] pending   KEYS[4] since
    KEYS[5] dirty    KEYS[6] dirtyAt  KEYS[7] attempts  KEYS[8] due
    KEYS[9] settling KEYS[10] settleHeat KEYS[11] policy KEYS[12] waits
    ARGV[1] now (ms)
    ARGV[2] number of acks n
    ARGV[3 .. 3n+2] triples: member, claim token, base (priority base when the type has no policy)
    ARGV[3n+3 ..] waits to record (ms from first mark to recompute start), newest last

  An acknowledged parent leaves `since`. A parent marked during its recompute becomes pending
  again with that heat, first marked at its first such mark; a type with settleMs waits out
  settleMs from now (its last mark was at most now), never past first mark + maxWaitMs.

  Output: { acked, rearmed, lost } where lost counts leases that had expired and were given
  back or to another worker: each such parent is marked once more, since this late recompute's
  write may have landed after a newer one.
]]
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local members, tokens, bases = {}, {}, {}
for i = 3, 3 * n + 2, 3 do
  members[#members + 1] = ARGV[i]
  tokens[#members] = ARGV[i + 1] .. '|'
  bases[#members] = tonumber(ARGV[i + 2])
end
if 3 * n + 3 <= #ARGV then
  redis.call('LPUSH', KEYS[12], unpack(ARGV, 3 * n + 3, #ARGV))
  redis.call('LTRIM', KEYS[12], 0, 999)
end
if n == 0 then return { 0, 0, 0 } end

local records = redis.call('HMGET', KEYS[2], unpack(members))
local heats = {}
if redis.call('EXISTS', KEYS[5]) == 1 then heats = redis.call('HMGET', KEYS[5], unpack(members)) end
local ours, rearm, done, lost = {}, {}, {}, 0
for i, member in ipairs(members) do
  local record = records[i]
  if record and string.sub(record, 1, #tokens[i]) == tokens[i] then
    ours[#ours + 1] = member
    if not heats[i] then
      done[#done + 1] = member
    else
      rearm[#rearm + 1] = member
      local first = tonumber(redis.call('HGET', KEYS[6], member)) or now
      local base, settle, wait = bases[i], 0, nil
      local raw = redis.call('HGET', KEYS[11], string.match(member, '^([^:]*):') or '')
      if raw then
        local b, s, w = string.match(raw, '^([^|]*)|([^|]*)|(.*)$')
        base, settle, wait = tonumber(b) or base, tonumber(s) or 0, tonumber(w)
      end
      local score = string.format('%.17g', base + tonumber(heats[i]))
      redis.call('ZADD', KEYS[4], first, member)
      local due
      if wait then
        due = first + wait
        redis.call('ZADD', KEYS[8], 'NX', due, member)
      end
      if settle > 0 then
        local ready = now + settle
        if due and due < ready then ready = due end
        redis.call('HSET', KEYS[10], member, score)
        redis.call('ZADD', KEYS[9], ready, member)
      else
        redis.call('ZADD', KEYS[3], score, member)
      end
    end
  else
    lost = lost + 1
    -- This recompute outlived its lease: another worker may have recomputed the parent since,
    -- and this one's write, from an older read, may have landed last. One more recompute
    -- settles it: a mark, held back if another worker holds the parent now.
    if record then
      redis.call('HINCRBY', KEYS[5], member, 1)
      redis.call('HSETNX', KEYS[6], member, now)
    else
      if redis.call('ZSCORE', KEYS[3], member) then
        redis.call('ZINCRBY', KEYS[3], 1, member)
      else
        redis.call('ZADD', KEYS[3], string.format('%.17g', bases[i] + 1), member)
      end
      redis.call('ZADD', KEYS[4], 'NX', now, member)
    end
  end
end
if #ours > 0 then
  redis.call('ZREM', KEYS[1], unpack(ours))
  redis.call('HDEL', KEYS[2], unpack(ours))
  if redis.call('EXISTS', KEYS[7]) == 1 then redis.call('HDEL', KEYS[7], unpack(ours)) end
end
if #done > 0 then redis.call('ZREM', KEYS[4], unpack(done)) end
if #rearm > 0 then
  redis.call('HDEL', KEYS[5], unpack(rearm))
  redis.call('HDEL', KEYS[6], unpack(rearm))
end
return { #ours, #rearm, lost }
