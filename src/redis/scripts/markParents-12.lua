--[[
  Mark parents: add heat to each, in one call for a whole transaction.

  Input:
    KEYS[1] pending   KEYS[2] since     KEYS[3] leases    KEYS[4] delayed
    KEYS[5] dirty     KEYS[6] dirtyAt   KEYS[7] dead      KEYS[8] deadInfo
    KEYS[9] due       KEYS[10] settling KEYS[11] settleHeat KEYS[12] policy
    ARGV[1] now (ms)
    ARGV[2..] triples: member, increment, base (priority base of the score, used when the
              member's type has no policy); the caller bounds their number

  - A parent that is leased or waiting to retry is held: its heat goes to `dirty` and comes
    back when the hold ends, so it is never claimed twice at once.
  - A dead parent gets a fresh start.
  - The first mark since the last recompute is kept in `since`, and with the type's maxWaitMs
    in `due` (first mark + maxWaitMs).
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
    local raw = redis.call('HGET', KEYS[12], kind)
    if raw then
      local b, s, w = string.match(raw, '^([^|]*)|([^|]*)|(.*)$')
      p = { base = tonumber(b), settle = tonumber(s) or 0, wait = tonumber(w) }
    end
    policies[kind] = p
  end
  return p
end

if redis.call('ZREM', KEYS[7], unpack(members)) > 0 then
  redis.call('HDEL', KEYS[8], unpack(members))
end
local leased = redis.call('ZMSCORE', KEYS[3], unpack(members))
local delayed = redis.call('ZMSCORE', KEYS[4], unpack(members))
local current = redis.call('ZMSCORE', KEYS[1], unpack(members))
local scores, firsts = {}, {}
for j, member in ipairs(members) do
  local p = policyOf(member)
  local base = (p and p.base) or bases[j]
  if leased[j] or delayed[j] then
    redis.call('HINCRBY', KEYS[5], member, incs[j])
    redis.call('HSETNX', KEYS[6], member, now)
  else
    firsts[#firsts + 1] = now
    firsts[#firsts + 1] = member
    local due
    if p and p.wait then
      redis.call('ZADD', KEYS[9], 'NX', now + p.wait, member)
      due = tonumber(redis.call('ZSCORE', KEYS[9], member))
    end
    if p and p.settle > 0 then
      -- Not quiet: the parent waits in `settling` (out of pending) with its score.
      local score = incs[j]
      if current[j] then
        score = score + tonumber(current[j])
        redis.call('ZREM', KEYS[1], member)
      else
        local held = redis.call('HGET', KEYS[11], member)
        score = score + (held and tonumber(held) or base)
      end
      redis.call('HSET', KEYS[11], member, string.format('%.17g', score))
      local ready = now + p.settle
      if due and due < ready then ready = due end
      redis.call('ZADD', KEYS[10], ready, member)
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
