--[[
  Mark parents: add heat to each, in one call for a whole transaction.

  Input:
    KEYS[1] pending   KEYS[2] since    KEYS[3] leases   KEYS[4] delayed
    KEYS[5] dirty     KEYS[6] dirtyAt  KEYS[7] dead     KEYS[8] deadInfo
    ARGV[1] now (ms)
    ARGV[2..] triples: member, increment, base (priority base of the member's score)

  A parent that is leased or waiting to retry is held: its heat goes to `dirty` and comes
  back to `pending` when the hold ends, so it is never claimed twice at once. A dead
  parent gets a fresh start. The caller bounds the number of triples per call.

  Output: number of distinct members marked
]]
local now = ARGV[1]
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

if redis.call('ZREM', KEYS[7], unpack(members)) > 0 then
  redis.call('HDEL', KEYS[8], unpack(members))
end
local leased = redis.call('ZMSCORE', KEYS[3], unpack(members))
local delayed = redis.call('ZMSCORE', KEYS[4], unpack(members))
local current = redis.call('ZMSCORE', KEYS[1], unpack(members))
local scores, firsts = {}, {}
for j, member in ipairs(members) do
  if leased[j] or delayed[j] then
    redis.call('HINCRBY', KEYS[5], member, incs[j])
    redis.call('HSETNX', KEYS[6], member, now)
  else
    local score = (current[j] and tonumber(current[j]) or bases[j]) + incs[j]
    scores[#scores + 1] = string.format('%.17g', score)
    scores[#scores + 1] = member
    firsts[#firsts + 1] = now
    firsts[#firsts + 1] = member
  end
end
if #scores > 0 then
  redis.call('ZADD', KEYS[1], unpack(scores))
  redis.call('ZADD', KEYS[2], 'NX', unpack(firsts))
end
return #members
