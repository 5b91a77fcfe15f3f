--[[
  Shared by every script that adds heat to a parent: one place decides where a mark goes.

  K: key names { pending, since, claims, dirty, dirtyAt, dead, deadInfo, due, settling,
     settleHeat, policy }
  markOne(K, member, inc, fallbackBase, now, first):
    - a dead parent gets a fresh start;
    - a held parent (a claim record: leased, or waiting to retry) keeps the heat aside in
      `dirty` (first such mark in `dirtyAt`); it comes back when the hold ends, so a parent is
      never claimable while held;
    - otherwise the first mark not yet covered by a recompute is kept in `since` (and with the
      type's maxWaitMs in `due`), and the heat goes to `settling` (a type with settleMs: each
      mark restarts the quiet period, never past `due`) or to `pending`. A parent left in
      `settling` by a type that no longer settles is moved to pending with its heat.
  Policies ("base|settleMs|maxWaitMs" per type) come from the `policy` hash, so every process
  and every path marks alike whatever it registered itself.
]]
local TIER = 1e12

local function fmt(n)
  return string.format('%.17g', n)
end

-- Heat of a score: its distance from its priority tier's base.
local function heatOf(score)
  return score - math.min(math.floor(score / TIER), 3) * TIER
end

local policyCache = {}
local function policyOf(K, member)
  local kind = string.match(member, '^([^:]*):') or ''
  local p = policyCache[kind]
  if p == nil then
    p = false
    local raw = redis.call('HGET', K.policy, kind)
    if raw then
      local b, s, w = string.match(raw, '^([^|]*)|([^|]*)|(.*)$')
      p = { base = tonumber(b), settle = tonumber(s) or 0, wait = tonumber(w) }
    end
    policyCache[kind] = p
  end
  return p
end

-- Sets that are usually empty are read only when they exist: marks are the hot path.
local present = {}
local function exists(key)
  local e = present[key]
  if e == nil then
    e = redis.call('EXISTS', key) == 1
    present[key] = e
  end
  return e
end

local function markOne(K, member, inc, fallbackBase, now, first)
  if exists(K.dead) and redis.call('ZREM', K.dead, member) == 1 then
    redis.call('HDEL', K.deadInfo, member)
  end
  if exists(K.claims) and redis.call('HEXISTS', K.claims, member) == 1 then
    redis.call('HINCRBY', K.dirty, member, inc)
    local at = tonumber(redis.call('HGET', K.dirtyAt, member))
    if not at or first < at then redis.call('HSET', K.dirtyAt, member, first) end
    present[K.dirty] = true
    return
  end
  local p = policyOf(K, member)
  local base = (p and p.base) or fallbackBase
  redis.call('ZADD', K.since, 'NX', first, member)
  local due
  if p and p.wait then
    local since = tonumber(redis.call('ZSCORE', K.since, member))
    redis.call('ZADD', K.due, 'NX', since + p.wait, member)
    due = tonumber(redis.call('ZSCORE', K.due, member))
    present[K.due] = true
  end
  local kept
  if exists(K.settleHeat) then kept = redis.call('HGET', K.settleHeat, member) end
  local current = redis.call('ZSCORE', K.pending, member)
  local score
  if current then
    score = tonumber(current) + inc
    if kept then score = score + heatOf(tonumber(kept)) end
  elseif kept then
    score = tonumber(kept) + inc
  else
    score = base + inc
  end
  if p and p.settle > 0 then
    -- Not quiet yet: the parent waits in `settling`, out of pending, with its score.
    if current then redis.call('ZREM', K.pending, member) end
    redis.call('HSET', K.settleHeat, member, fmt(score))
    present[K.settleHeat] = true
    local ready = now + p.settle
    if due and due < ready then ready = due end
    redis.call('ZADD', K.settling, ready, member)
  else
    if kept then
      redis.call('HDEL', K.settleHeat, member)
      redis.call('ZREM', K.settling, member)
    end
    redis.call('ZADD', K.pending, fmt(score), member)
  end
end
