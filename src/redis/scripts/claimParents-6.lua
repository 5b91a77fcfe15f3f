--[[
  Claim parents read by the caller (ZREVRANGE of pending, or the overdue ones of `due`): a
  checked ZREM per member decides who owns it, and the winner records a lease.

  Input:
    KEYS[1] pending  KEYS[2] since  KEYS[3] leases  KEYS[4] claims  KEYS[5] attempts
    KEYS[6] due
    ARGV[1] lease deadline (ms)
    ARGV[2] claim token (no '|')
    ARGV[3..] members; the caller bounds their number

  The claim record kept in `claims` is "token|score|since|due" ('' for unknown times), so a
  parent given back keeps its heat and its place in time.

  Output: flat array, per claimed member: member, score, since ('' if unknown), attempts so far.
  A member missing from the output lost the race to another worker.
]]
local deadline, token = ARGV[1], ARGV[2]
local members = {}
for i = 3, #ARGV do members[#members + 1] = ARGV[i] end
if #members == 0 then return {} end

local scores = redis.call('ZMSCORE', KEYS[1], unpack(members))
local sinces = redis.call('ZMSCORE', KEYS[2], unpack(members))
local dues = redis.call('ZMSCORE', KEYS[6], unpack(members))
local attempts = redis.call('HMGET', KEYS[5], unpack(members))
local won, leases, records, out = {}, {}, {}, {}
for i, member in ipairs(members) do
  if scores[i] and redis.call('ZREM', KEYS[1], member) == 1 then
    local since = sinces[i] or ''
    won[#won + 1] = member
    leases[#leases + 1] = deadline
    leases[#leases + 1] = member
    records[#records + 1] = member
    records[#records + 1] = token .. '|' .. scores[i] .. '|' .. since .. '|' .. (dues[i] or '')
    out[#out + 1] = member
    out[#out + 1] = scores[i]
    out[#out + 1] = since
    out[#out + 1] = attempts[i] or '0'
  end
end
if #won > 0 then
  redis.call('ZREM', KEYS[2], unpack(won))
  redis.call('ZREM', KEYS[6], unpack(won))
  redis.call('ZADD', KEYS[3], unpack(leases))
  redis.call('HSET', KEYS[4], unpack(records))
end
return out
