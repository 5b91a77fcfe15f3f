--[[
  Mark parents: add heat to each, in one call for a whole transaction.

  Input:
    KEYS[1] pending   KEYS[2] since     KEYS[3] claims    KEYS[4] dirty
    KEYS[5] dirtyAt   KEYS[6] dead      KEYS[7] deadInfo  KEYS[8] due
    KEYS[9] settling  KEYS[10] settleHeat KEYS[11] policy
    ARGV[1] now (ms)
    ARGV[2..] triples: member, increment, base (priority base of the score, used when the
              member's type has no policy); the caller bounds their number

  - A parent with a claim record is held (leased, or waiting to retry): its heat goes to
    `dirty` and comes back when the hold ends, so it is never claimed twice at once.
  - A dead parent gets a fresh start.
  - The first mark not yet covered by a recompute is kept in `since`, and with the type's
    maxWaitMs in `due` (first mark + maxWaitMs).
  - A type with settleMs keeps the parent in `settling` until settleMs pass with no mark
    (never past its `due`); each mark starts the quiet period again.

  Output: number of distinct members marked
]]
local now = tonumber(ARGV[1])
local members, incs, bases, at = {}, {}, {}, {}
for i = 2, #ARGV, 3 do
  local member = ARGV[i]
  local j = at[member]
  if j then
    incs[j] = incs[j] + tonumber(ARGV[i + 1])
  else
    members[#members + 1] = member
    j = #members
    at[member] = j
    incs[j] = tonumber(ARGV[i + 1])
    bases[j] = tonumber(ARGV[i + 2])
  end
end
if #members == 0 then return 0 end

local policies = {}
local function policyOf(member)
  local kind = string.match(member, '^([^:]*):') or ''
  local p = policies[kind]
  if p == nil then
    p = false
    local raw = redis.call('HGET', KEYS[11], kind)
    if raw then
      local b, s, w = string.match(raw, '^([^|]*)|([^|]*)|(.*)$')
      p = { base = tonumber(b), settle = tonumber(s) or 0, wait = tonumber(w) }
    end
    policies[kind] = p
  end
  return p
end

if redis.call('EXISTS', KEYS[6]) == 1 and redis.call('ZREM', KEYS[6], unpack(members)) > 0 then
  redis.call('HDEL', KEYS[7], unpack(members))
end
local held = {}
if redis.call('EXISTS', KEYS[3]) == 1 then held = redis.call('HMGET', KEYS[3], unpack(members)) end
local current = redis.call('ZMSCORE', KEYS[1], unpack(members))
local scores, firsts = {}, {}
for j, member in ipairs(members) do
  local p = policyOf(member)
  local base = (p and p.base) or bases[j]
  if held[j] then
    redis.call('HINCRBY', KEYS[4], member, incs[j])
    redis.call('HSETNX', KEYS[5], member, now)
  else
    firsts[#firsts + 1] = now
    firsts[#firsts + 1] = member
    local due
    if p and p.wait then
      redis.call('ZADD', KEYS[8], 'NX', now + p.wait, member)
      due = tonumber(redis.call('ZSCORE', KEYS[8], member))
    end
    if p and p.settle > 0 then
      -- Not quiet: the parent waits in `settling` (out of pending) with its score.
      local score = incs[j]
      if current[j] then
        score = score + tonumber(current[j])
        redis.call('ZREM', KEYS[1], member)
      else
        local kept = redis.call('HGET', KEYS[10], member)
        score = score + (kept and tonumber(kept) or base)
      end
      redis.call('HSET', KEYS[10], member, string.format('%.17g', score))
      local ready = now + p.settle
      if due and due < ready then ready = due end
      redis.call('ZADD', KEYS[9], ready, member)
    else
      local score = (current[j] and tonumber(current[j]) or base) + incs[j]
      scores[#scores + 1] = string.format('%.17g', score)
      scores[#scores + 1] = member
    end
  end
end
if #scores > 0 then redis.call('ZADD', KEYS[1], unpack(scores)) end
if #firsts > 0 then redis.call('ZADD', KEYS[2], 'NX', unpack(firsts)) end
return #members
