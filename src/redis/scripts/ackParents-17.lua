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
if n == 0 then return { 0, 0, 0 } end

-- Each member once in the batched reads; a repeat (never sent by one worker) is acknowledged
-- after them, where its claim has ended and it counts as superseded.
local members, tokens, bases, seen, again = {}, {}, {}, {}, {}
for i = 4, 3 * n + 3, 3 do
  local member = ARGV[i]
  if seen[member] then
    again[#again + 1] = member
    again[#again + 1] = tonumber(ARGV[i + 2])
  else
    seen[member] = true
    members[#members + 1] = member
    tokens[#members] = ARGV[i + 1]
    bases[#members] = tonumber(ARGV[i + 2])
  end
end

local function ifExists(key, cmd, list)
  if #list > 0 and redis.call('EXISTS', key) == 1 then return redis.call(cmd, key, unpack(list)) end
  return {}
end

local records = redis.call('HMGET', KEYS[2], unpack(members))
local held = redis.call('ZMSCORE', KEYS[1], unpack(members))
local owned, ownedGens, ownedBases, superseded = {}, {}, {}, {}
for j, member in ipairs(members) do
  local record, token = records[j], tokens[j]
  if record and held[j] and string.sub(record, 1, #token + 1) == token .. '|' then
    owned[#owned + 1] = member
    ownedGens[#owned] = string.match(record, '^[^|]*|[^|]*|[^|]*|(.*)$') or ''
    ownedBases[#owned] = bases[j]
  else
    superseded[#superseded + 1] = j
  end
end

local rearmed = 0
if #owned > 0 then
  redis.call('ZREM', KEYS[1], unpack(owned))
  redis.call('HDEL', KEYS[2], unpack(owned))
  ifExists(KEYS[3], 'HDEL', owned)
  redis.call('ZREM', KEYS[5], unpack(owned))
  ifExists(KEYS[10], 'ZREM', owned)
  local heats = ifExists(KEYS[6], 'HMGET', owned)
  local rearm, incs, rearmBases, firsts, keptGens, clean = {}, {}, {}, {}, {}, {}
  for j, member in ipairs(owned) do
    if heats[j] then
      rearm[#rearm + 1] = member
      incs[#rearm] = tonumber(heats[j])
      rearmBases[#rearm] = ownedBases[j]
      if ownedGens[j] ~= '' then
        keptGens[#keptGens + 1] = member
        keptGens[#keptGens + 1] = ownedGens[j]
      end
    else
      -- Nothing newer than what this recompute covered: the generations can go.
      clean[#clean + 1] = member
    end
  end
  if #rearm > 0 then
    local ats = redis.call('HMGET', KEYS[7], unpack(rearm))
    for j = 1, #rearm do firsts[j] = tonumber(ats[j]) or now end
    redis.call('HDEL', KEYS[6], unpack(rearm))
    redis.call('HDEL', KEYS[7], unpack(rearm))
    markMany(K, rearm, incs, rearmBases, now, firsts)
    if #keptGens > 0 then redis.call('HSET', KEYS[16], unpack(keptGens)) end
    rearmed = #rearm
  end
  if #clean > 0 then
    ifExists(KEYS[15], 'HDEL', clean)
    ifExists(KEYS[16], 'HDEL', clean)
  end
  if redis.call('EXISTS', KEYS[17]) == 1 then
    redis.call('PUBLISH', ARGV[3], cjson.encode({ type = 'acked', members = owned, generations = ownedGens }))
  end
end

-- Superseded: this recompute may have written after a newer one from an older read, so the
-- parent gets one mark; one more recompute settles it.
for _, j in ipairs(superseded) do markOne(K, members[j], 1, bases[j], now, now) end
for i = 1, #again, 2 do markOne(K, again[i], 1, again[i + 1], now, now) end
return { #owned, rearmed, #superseded + #again / 2 }
