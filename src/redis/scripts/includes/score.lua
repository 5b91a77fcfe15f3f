--[[
  Scores of pending parents: a priority tier's base (multiples of TIER) plus the heat. TIER is
  the TypeScript constant of src/redis/score.ts, written in when the script is loaded.
]]
--- @const TIER

local function fmt(n)
  return string.format('%.17g', n)
end

-- Heat of a score: its distance from its priority tier's base.
local function heatOf(score)
  return score - math.min(math.floor(score / TIER), 3) * TIER
end

-- Puts a parent back in pending with a score it had: the whole score when it is not there,
-- only the heat when it is (an entry already there keeps its own tier).
local function restore(pending, member, score)
  if redis.call('ZSCORE', pending, member) then
    redis.call('ZINCRBY', pending, heatOf(score), member)
  else
    redis.call('ZADD', pending, fmt(score), member)
  end
end
