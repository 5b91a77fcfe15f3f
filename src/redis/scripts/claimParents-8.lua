--[[
  Claim parents read by the caller (the top of pending, and the overdue ones of `due`): a
  checked ZREM per member decides who owns it, and the winner records a lease.

  Keys: pending, leases, claims, attempts, due, since, fence, generations

  Args:
    ARGV[1] lease deadline (ms, server time)
    ARGV[2] how many of the won members to report the first-mark time of (a sample)
    ARGV[3..] pairs: member, score as read by the caller ('' when not read); the caller bounds
              their number

  The claim's fencing token is a number from INCR `fence`: every claim window gets a larger one
  than any before it in the namespace. The claim record (claimRecord.lua) keeps the score as
  read (a mark landing between that read and this claim is covered by the recompute; only its
  heat is missing from the record), the member's `due`, and its mark generation, which the
  recompute covers. The first mark stays in `since` until the ack.

  Output: flat array: token, then per won member: its index in the input (1-based), score,
          since ('' if not sampled), attempts so far. A member left out lost the race.
]]
local pending, leases, claims, attempts, due, since, fence, generations = unpack(KEYS)
--- @include "claimRecord"

local deadline, sample = ARGV[1], tonumber(ARGV[2])
local members, read = {}, {}
for i = 3, #ARGV, 2 do
  members[#members + 1] = ARGV[i]
  read[#members] = ARGV[i + 1]
end
if #members == 0 then return {} end
local token = tostring(redis.call('INCR', fence))

local function readIfAny(cmd, key)
  if redis.call('EXISTS', key) == 1 then return redis.call(cmd, key, unpack(members)) end
  return {}
end
local dues = readIfAny('ZMSCORE', due)
local failures = readIfAny('HMGET', attempts)
local gens = readIfAny('HMGET', generations)
local won, leased, records, out = {}, {}, {}, { token }
for i, member in ipairs(members) do
  local score = read[i]
  if score == '' then score = redis.call('ZSCORE', pending, member) end
  if score and redis.call('ZREM', pending, member) == 1 then
    won[#won + 1] = member
    leased[#leased + 1] = deadline
    leased[#leased + 1] = member
    records[#records + 1] = member
    records[#records + 1] = claimRecord(token, score, dues[i], gens[i])
    local first = ''
    if #won <= sample then first = redis.call('ZSCORE', since, member) or '' end
    out[#out + 1] = i
    out[#out + 1] = score
    out[#out + 1] = first
    out[#out + 1] = failures[i] or '0'
  end
end
if #won > 0 then
  if #dues > 0 then redis.call('ZREM', due, unpack(won)) end
  redis.call('ZADD', leases, unpack(leased))
  redis.call('HSET', claims, unpack(records))
end
return out
