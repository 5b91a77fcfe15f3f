--[[
  Mark parents: add heat to each, in one call for a whole transaction.

  Keys: pending, since, claims, dirty, dirtyAt, dead, deadInfo, due, settling, settleHeat,
        policy, epoch, generations, fence, writers

  Args:
    ARGV[1] now (ms)
    ARGV[2] the writer: the marking process's id ('' for none)
    ARGV[3..] triples: member, increment, base (priority base of the score, used when the
              member's type has no policy); the caller bounds their number

  Each member's generation becomes the next value of the namespace's `fence` counter (one per
  call), so generations only grow, even after a parent's is dropped: a reader waiting for a
  parent to be fresh compares the generation of its own mark with the one a recompute covered.

  The writer's generation is kept in `writers`, and the one it had before is returned: a
  process that finds it older than a generation Redis gave it knows Redis lost its last writes,
  whatever marks of other processes did to the counter since.

  Output: { number of distinct members marked, epoch of the namespace ('' when it has none:
            Redis lost its data, or no process attached yet), the generation given (0 when
            nothing was marked), the writer's generation before this call ('' when none) }
]]
local pending, since, claims, dirty, dirtyAt, dead, deadInfo, due, settling, settleHeat,
      policy, epoch, generations, fence, writers = unpack(KEYS)
--- @include "markOne"

local K = {
  pending = pending, since = since, claims = claims, dirty = dirty, dirtyAt = dirtyAt, dead = dead,
  deadInfo = deadInfo, due = due, settling = settling, settleHeat = settleHeat, policy = policy,
}
local now, writer = tonumber(ARGV[1]), ARGV[2]
local members, incs, bases, at = {}, {}, {}, {}
for i = 3, #ARGV, 3 do
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
if #members == 0 then return { 0, redis.call('GET', epoch) or '', 0, '' } end
local firsts, gens = {}, {}
local gen = redis.call('INCR', fence)
for j, member in ipairs(members) do
  firsts[j] = now
  gens[#gens + 1] = member
  gens[#gens + 1] = gen
end
markMany(K, members, incs, bases, now, firsts)
redis.call('HSET', generations, unpack(gens))
local before = ''
if writer ~= '' then
  before = redis.call('HGET', writers, writer) or ''
  redis.call('HSET', writers, writer, gen)
end
return { #members, redis.call('GET', epoch) or '', gen, before }
