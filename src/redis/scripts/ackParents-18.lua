--[[
  Acknowledge recomputed parents: end their claims, and re-arm those marked meanwhile.

  Keys: leases, claims, attempts, pending, since, dirty, dirtyAt, dead, deadInfo, due,
        settling, settleHeat, policy, waits, generations, ackedGens, listening, cooling

  Args:
    ARGV[1] now (ms)
    ARGV[2] n: number of acknowledged parents
    ARGV[3] the namespace's event channel
    ARGV[4 .. 3n+3] triples: member, claim token, priority base
    ARGV[3n+4 ..] waits (ms from first mark to recompute start) to record for lag figures

  - Owned (the record carries the token and the lease is still held): the claim ends. Marks
    that arrived during the recompute (`dirty`) go back through markOne with their first-mark
    time (a type with minIntervalMs: into `settling` for that long, never past `due`); without
    any, the parent is done (out of `since` and `due`). The generation the claim
    covered is kept in `ackedGens` while newer marks wait, and both are dropped once none does.
    When someone listens (`listening`), the acknowledged members and generations are published
    on the event channel, for readers waiting for a parent to be fresh.
  - Superseded (the lease expired and was given back or passed to another worker): nothing of
    the current claim changes, but this recompute may have written after a newer one from an
    older read, so the parent gets one mark: one more recompute settles it.

  Output: { acked, rearmed, superseded }
]]
local leases, claims, attempts, pending, since, dirty, dirtyAt, dead, deadInfo, due,
      settling, settleHeat, policy, waits, generations, ackedGens, listening, cooling = unpack(KEYS)
--- @include "markOne"
--- @include "claimRecord"

local K = {
  pending = pending, since = since, claims = claims, dirty = dirty, dirtyAt = dirtyAt, dead = dead,
  deadInfo = deadInfo, due = due, settling = settling, settleHeat = settleHeat, policy = policy,
  cooling = cooling,
}
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
if 3 * n + 4 <= #ARGV then
  redis.call('LPUSH', waits, unpack(ARGV, 3 * n + 4, #ARGV))
  redis.call('LTRIM', waits, 0, 999)
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

local records = redis.call('HMGET', claims, unpack(members))
local held = redis.call('ZMSCORE', leases, unpack(members))
local owned, ownedGens, ownedBases, superseded = {}, {}, {}, {}
for j, member in ipairs(members) do
  if held[j] and claimedBy(records[j], tokens[j]) then
    owned[#owned + 1] = member
    local _, _, _, generation = claimFields(records[j])
    ownedGens[#owned] = generation
    ownedBases[#owned] = bases[j]
  else
    superseded[#superseded + 1] = j
  end
end

local rearmed = 0
if #owned > 0 then
  redis.call('ZREM', leases, unpack(owned))
  redis.call('HDEL', claims, unpack(owned))
  ifExists(attempts, 'HDEL', owned)
  redis.call('ZREM', since, unpack(owned))
  ifExists(due, 'ZREM', owned)
  local heats = ifExists(dirty, 'HMGET', owned)
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
    local ats = redis.call('HMGET', dirtyAt, unpack(rearm))
    for j = 1, #rearm do firsts[j] = tonumber(ats[j]) or now end
    redis.call('HDEL', dirty, unpack(rearm))
    redis.call('HDEL', dirtyAt, unpack(rearm))
    markMany(K, rearm, incs, rearmBases, now, firsts, true)
    if #keptGens > 0 then redis.call('HSET', ackedGens, unpack(keptGens)) end
    rearmed = #rearm
  end
  if #clean > 0 then
    ifExists(generations, 'HDEL', clean)
    ifExists(ackedGens, 'HDEL', clean)
  end
  if redis.call('EXISTS', listening) == 1 then
    redis.call('PUBLISH', ARGV[3], cjson.encode({ type = 'acked', members = owned, generations = ownedGens }))
  end
end

-- Superseded: this recompute may have written after a newer one from an older read, so the
-- parent gets one mark; one more recompute settles it.
for _, j in ipairs(superseded) do markOne(K, members[j], 1, bases[j], now, now) end
for i = 1, #again, 2 do markOne(K, again[i], 1, again[i + 1], now, now) end
return { #owned, rearmed, #superseded + #again / 2 }
