--[[
  Acknowledge recomputed parents: end their claims, and re-arm those marked meanwhile.

  Input:
    KEYS[1] leases    KEYS[2] claims     KEYS[3] attempts  KEYS[4] pending
    KEYS[5] since     KEYS[6] dirty      KEYS[7] dirtyAt   KEYS[8] dead
    KEYS[9] deadInfo  KEYS[10] due       KEYS[11] settling KEYS[12] settleHeat
    KEYS[13] policy   KEYS[14] waits     KEYS[15] generations KEYS[16] ackedGens
    KEYS[17] listening
    ARGV[1] now (ms)
    ARGV[2] n: number of acknowledged parents
    ARGV[3] the namespace's event channel
    ARGV[4 .. 3n+3] triples: member, claim token, priority base
    ARGV[3n+4 ..] waits (ms from first mark to recompute start) to record for lag figures

  - Owned (the record carries the token and the lease is still held): the claim ends. Marks
    that arrived during the recompute (`dirty`) go back through markOne with their first-mark
    time; without any, the parent is done (out of `since` and `due`). The generation the claim
    covered is kept in `ackedGens` while newer marks wait, and both are dropped once none does.
    When someone listens (`listening`), the acknowledged members and generations are published
    on the event channel, for readers waiting for a parent to be fresh.
  - Superseded (the lease expired and was given back or passed to another worker): nothing of
    the current claim changes, but this recompute may have written after a newer one from an
    older read, so the parent gets one mark: one more recompute settles it.

  Output: { acked, rearmed, superseded }
]]
--- @include "markOne"

local K = {
  pending = KEYS[4], since = KEYS[5], claims = KEYS[2], dirty = KEYS[6], dirtyAt = KEYS[7],
  dead = KEYS[8], deadInfo = KEYS[9], due = KEYS[10], settling = KEYS[11], settleHeat = KEYS[12],
  policy = KEYS[13],
}
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
if 3 * n + 4 <= #ARGV then
  redis.call('LPUSH', KEYS[14], unpack(ARGV, 3 * n + 4, #ARGV))
  redis.call('LTRIM', KEYS[14], 0, 999)
end
local acked, rearmed, superseded = 0, 0, 0
local done, gens = {}, {}
for i = 4, 3 * n + 3, 3 do
  local member, token, base = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local record = redis.call('HGET', KEYS[2], member)
  if record and string.sub(record, 1, #token + 1) == token .. '|'
      and redis.call('ZREM', KEYS[1], member) == 1 then
    acked = acked + 1
    redis.call('HDEL', KEYS[2], member)
    redis.call('HDEL', KEYS[3], member)
    local gen = string.match(record, '^[^|]*|[^|]*|[^|]*|(.*)$') or ''
    local heat = redis.call('HGET', KEYS[6], member)
    redis.call('ZREM', KEYS[5], member)
    redis.call('ZREM', KEYS[10], member)
    if heat then
      local first = tonumber(redis.call('HGET', KEYS[7], member)) or now
      redis.call('HDEL', KEYS[6], member)
      redis.call('HDEL', KEYS[7], member)
      markOne(K, member, tonumber(heat), base, now, first)
      rearmed = rearmed + 1
      if gen ~= '' then redis.call('HSET', KEYS[16], member, gen) end
    else
      -- Nothing newer than what this recompute covered: the generations can go.
      redis.call('HDEL', KEYS[15], member)
      redis.call('HDEL', KEYS[16], member)
    end
    done[#done + 1] = member
    gens[#gens + 1] = gen
  else
    superseded = superseded + 1
    markOne(K, member, 1, base, now, now)
  end
end
if #done > 0 and redis.call('EXISTS', KEYS[17]) == 1 then
  redis.call('PUBLISH', ARGV[3], cjson.encode({ type = 'acked', members = done, generations = gens }))
end
return { acked, rearmed, superseded }
