--[[
  Mark parents: add heat to each, in one call for a whole transaction.

  Keys: pending, since, claims, dirty, dirtyAt, dead, deadInfo, due, settling, settleHeat,
        policy, epoch, generations, fence

  Args:
    ARGV[1] now (ms)
    ARGV[2..] triples: member, increment, base (priority base of the score, used when the
              member's type has no policy); the caller bounds their number

  Each member's generation becomes the next value of the namespace's `fence` counter (one per
  call), so generations only grow, even after a parent's is dropped: a reader waiting for a
  parent to be fresh compares the generation of its own mark with the one a recompute covered.

  Output: { number of distinct members marked, epoch of the namespace ('' when it has none:
            Redis lost its data, or no process attached yet), the generation given (0 when
            nothing was marked) }
]]
local pending, since, claims, dirty, dirtyAt, dead, deadInfo, due, settling, settleHeat,
      policy, epoch, generations, fence = unpack(KEYS)
--- @include "markOne"

local K = {
  pending = pending, since = since, claims = claims, dirty = dirty, dirtyAt = dirtyAt, dead = dead,
  deadInfo = deadInfo, due = due, settling = settling, settleHeat = settleHeat, policy = policy,
}
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
if #members == 0 then return { 0, redis.call('GET', epoch) or '', 0 } end
local firsts, gens = {}, {}
local gen = redis.call('INCR', fence)
for j, member in ipairs(members) do
  firsts[j] = now
  gens[#gens + 1] = member
  gens[#gens + 1] = gen
end
markMany(K, members, incs, bases, now, firsts)
redis.call('HSET', generations, unpack(gens))
return { #members, redis.call('GET', epoch) or '', gen }
