--[[
  Shared by every script that adds heat to a parent: one place decides where a mark goes.

  K: key names { pending, since, claims, dirty, dirtyAt, dead, deadInfo, due, settling,
     settleHeat, policy }, and `cooling` where an acknowledgement re-arms (`rearm`)
  markMany(K, members, incs, bases, now, firsts, rearm) / markOne(K, member, inc, base, now, first):
    - a dead parent gets a fresh start;
    - a held parent (a claim record: leased, or waiting to retry) keeps the heat aside in
      `dirty` (first such mark in `dirtyAt`); it comes back when the hold ends, so a parent is
      never claimable while held;
    - otherwise the first mark not yet covered by a recompute is kept in `since` (and with the
      type's maxWaitMs in `due`), and the heat goes to `settling` (a type with settleMs: each
      mark restarts the quiet period, never past `due`) or to `pending`. A parent left in
      `settling` by a type that no longer settles is moved to pending with its heat.
    - `rearm` is true when an acknowledgement re-arms parents marked during their recompute:
      those of a type with minIntervalMs wait that long in `settling` (never past `due`), listed
      in `K.cooling` too. A later mark adds heat there and keeps the time.
  Policies ("base|settleMs|maxWaitMs|minIntervalMs" per type) come from the `policy` hash, so
  every process and every path marks alike whatever it registered itself.
]]
--- @include "score"

local policyCache = {}
local function policyOf(K, member)
  local kind = string.match(member, '^([^:]*):') or ''
  local p = policyCache[kind]
  if p == nil then
    p = false
    local raw = redis.call('HGET', K.policy, kind)
    if raw then
      local b, s, w, c = string.match(raw, '^([^|]*)|([^|]*)|([^|]*)|?(.*)$')
      p = { base = tonumber(b), settle = tonumber(s) or 0, wait = tonumber(w), cool = tonumber(c) or 0 }
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

-- Marks several members at once (each at most once in the lists): the common case, a parent
-- that is neither held, settling nor capped, costs a share of a few batched calls.
local function markMany(K, members, incs, bases, now, firsts, rearm)
  local n = #members
  if n == 0 then return end
  if exists(K.dead) and redis.call('ZREM', K.dead, unpack(members)) > 0 then
    redis.call('HDEL', K.deadInfo, unpack(members))
  end
  local held, kept = {}, {}
  if exists(K.claims) then held = redis.call('HMGET', K.claims, unpack(members)) end
  if exists(K.settleHeat) then kept = redis.call('HMGET', K.settleHeat, unpack(members)) end
  local current = redis.call('ZMSCORE', K.pending, unpack(members))
  local sinceArgs, pendingArgs = {}, {}
  for j = 1, n do
    local member, inc, first = members[j], incs[j], firsts[j]
    if held[j] then
      redis.call('HINCRBY', K.dirty, member, inc)
      local at = tonumber(redis.call('HGET', K.dirtyAt, member))
      if not at or first < at then redis.call('HSET', K.dirtyAt, member, first) end
      present[K.dirty] = true
    else
      local p = policyOf(K, member)
      local base = (p and p.base) or bases[j]
      local due
      if p and p.wait then
        redis.call('ZADD', K.since, 'NX', first, member)
        local since = tonumber(redis.call('ZSCORE', K.since, member))
        redis.call('ZADD', K.due, 'NX', since + p.wait, member)
        due = tonumber(redis.call('ZSCORE', K.due, member))
        present[K.due] = true
      else
        sinceArgs[#sinceArgs + 1] = first
        sinceArgs[#sinceArgs + 1] = member
      end
      local score
      if current[j] then
        score = tonumber(current[j]) + inc
        if kept[j] then score = score + heatOf(tonumber(kept[j])) end
      elseif kept[j] then
        score = tonumber(kept[j]) + inc
      else
        score = base + inc
      end
      local hold, cooling = 0, false
      if p and p.settle > 0 then
        hold = p.settle
      elseif rearm and p and p.cool > 0 then
        hold, cooling = p.cool, true
      end
      if hold > 0 then
        -- Not quiet yet (or just recomputed): the parent waits in `settling`, out of pending,
        -- with its score.
        if current[j] then redis.call('ZREM', K.pending, member) end
        redis.call('HSET', K.settleHeat, member, fmt(score))
        present[K.settleHeat] = true
        local ready = now + hold
        if due and due < ready then ready = due end
        redis.call('ZADD', K.settling, ready, member)
        if cooling then redis.call('ZADD', K.cooling, ready, member) end
      elseif kept[j] and p and p.cool > 0 then
        -- Marked in its minimum interval: more heat, the same time.
        redis.call('HSET', K.settleHeat, member, fmt(score))
      else
        if kept[j] then
          redis.call('HDEL', K.settleHeat, member)
          redis.call('ZREM', K.settling, member)
        end
        pendingArgs[#pendingArgs + 1] = fmt(score)
        pendingArgs[#pendingArgs + 1] = member
      end
    end
  end
  if #sinceArgs > 0 then redis.call('ZADD', K.since, 'NX', unpack(sinceArgs)) end
  if #pendingArgs > 0 then redis.call('ZADD', K.pending, unpack(pendingArgs)) end
end

local function markOne(K, member, inc, fallbackBase, now, first)
  markMany(K, { member }, { inc }, { fallbackBase }, now, { first })
end
