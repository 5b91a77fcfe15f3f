--[[
  Give dead parents a fresh start: back through markOne with the heat they had.

  Input:
    KEYS: pending, since, claims, dirty, dirtyAt, dead, deadInfo, due, settling, settleHeat,
          policy (markOne's keys), then attempts
    ARGV[1] now (ms)
    ARGV[2] limit: most members to revive when none is named
    ARGV[3..] optional members to revive (the caller bounds their number); without them the
              oldest dead first

  A revived parent keeps the heat and priority tier it had (its type's policy, if any, wins).

  Output: number of members revived
]]
--- @include "markOne"

local K = {
  pending = KEYS[1], since = KEYS[2], claims = KEYS[3], dirty = KEYS[4], dirtyAt = KEYS[5],
  dead = KEYS[6], deadInfo = KEYS[7], due = KEYS[8], settling = KEYS[9], settleHeat = KEYS[10],
  policy = KEYS[11],
}
local now = tonumber(ARGV[1])
local members
if #ARGV > 2 then
  members = {}
  for i = 3, #ARGV do members[#members + 1] = ARGV[i] end
else
  members = redis.call('ZRANGE', KEYS[6], 0, tonumber(ARGV[2]) - 1)
end
local revived = 0
for _, member in ipairs(members) do
  if redis.call('ZSCORE', KEYS[6], member) then
    local heat, base = 1, TIER
    local record = redis.call('HGET', KEYS[7], member)
    if record then
      local ok, decoded = pcall(cjson.decode, record)
      local score = ok and type(decoded) == 'table' and tonumber(decoded.score)
      if score then
        heat = math.max(1, heatOf(score))
        base = score - heatOf(score)
      end
    end
    redis.call('HDEL', KEYS[12], member)
    markOne(K, member, heat, base, now, now)
    revived = revived + 1
  end
end
return revived
