--[[
  Mark parents: add heat to each, in one call for a whole transaction.

  Input:
    KEYS[1] pending   KEYS[2] since      KEYS[3] claims    KEYS[4] dirty
    KEYS[5] dirtyAt   KEYS[6] dead       KEYS[7] deadInfo  KEYS[8] due
    KEYS[9] settling  KEYS[10] settleHeat KEYS[11] policy  KEYS[12] epoch
    KEYS[13] generations  KEYS[14] fence
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
--- @include "markOne"

local K = {
  pending = KEYS[1], since = KEYS[2], claims = KEYS[3], dirty = KEYS[4], dirtyAt = KEYS[5],
  dead = KEYS[6], deadInfo = KEYS[7], due = KEYS[8], settling = KEYS[9], settleHeat = KEYS[10],
  policy = KEYS[11],
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
if #members == 0 then return { 0, redis.call('GET', KEYS[12]) or '', 0 } end
local firsts, gens = {}, {}
local gen = redis.call('INCR', KEYS[14])
for j, member in ipairs(members) do
  firsts[j] = now
  gens[#gens + 1] = member
  gens[#gens + 1] = gen
end
markMany(K, members, incs, bases, now, firsts)
redis.call('HSET', KEYS[13], unpack(gens))
return { #members, redis.call('GET', KEYS[12]) or '', gen }
