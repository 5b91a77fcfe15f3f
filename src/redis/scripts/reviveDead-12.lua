--[[
  Give dead parents a fresh start: back through markOne with the heat they had.

  Keys: pending, since, claims, dirty, dirtyAt, dead, deadInfo, due, settling, settleHeat,
        policy, attempts

  Args:
    ARGV[1] now (ms)
    ARGV[2] limit: most members to revive when none is named
    ARGV[3..] optional members to revive (the caller bounds their number); without them the
              oldest dead first

  A revived parent keeps the heat and priority tier it had (its type's policy, if any, wins).

  Output: number of members revived
]]
local pending, since, claims, dirty, dirtyAt, dead, deadInfo, due, settling, settleHeat,
      policy, attempts = unpack(KEYS)
--- @include "markOne"

local K = {
  pending = pending, since = since, claims = claims, dirty = dirty, dirtyAt = dirtyAt, dead = dead,
  deadInfo = deadInfo, due = due, settling = settling, settleHeat = settleHeat, policy = policy,
}
local now = tonumber(ARGV[1])
local members
if #ARGV > 2 then
  members = {}
  for i = 3, #ARGV do members[#members + 1] = ARGV[i] end
else
  members = redis.call('ZRANGE', dead, 0, tonumber(ARGV[2]) - 1)
end
local revived = 0
for _, member in ipairs(members) do
  if redis.call('ZSCORE', dead, member) then
    local heat, base = 1, TIER
    local record = redis.call('HGET', deadInfo, member)
    if record then
      local ok, decoded = pcall(cjson.decode, record)
      local score = ok and type(decoded) == 'table' and tonumber(decoded.score)
      if score then
        heat = math.max(1, heatOf(score))
        base = score - heatOf(score)
      end
    end
    redis.call('HDEL', attempts, member)
    markOne(K, member, heat, base, now, now)
    revived = revived + 1
  end
end
return revived
