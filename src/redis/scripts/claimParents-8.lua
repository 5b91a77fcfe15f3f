--[[
  Claim parents read by the caller (the top of pending, and the overdue ones of `due`): a
  checked ZREM per member decides who owns it, and the winner records a lease.

  Input:
    KEYS[1] pending  KEYS[2] leases  KEYS[3] claims  KEYS[4] attempts  KEYS[5] due
    KEYS[6] since    KEYS[7] fence   KEYS[8] generations
    ARGV[1] lease deadline (ms, server time)
    ARGV[2] how many of the won members to report the first-mark time of (a sample)
    ARGV[3..] pairs: member, score as read by the caller ('' when not read); the caller bounds
              their number

  The claim's fencing token is a number from INCR `fence`: every claim window gets a larger one
  than any before it in the namespace. The claim record kept in `claims` is
  "token|score|due|generation": the score as read (a mark landing between that read and this
  claim is covered by the recompute; only its heat is missing from the record), the member's
  `due`, and its mark generation, which the recompute covers. The first mark stays in `since`
  until the ack.

  Output: flat array: token, then per won member: its index in the input (1-based), score,
          since ('' if not sampled), attempts so far. A member left out lost the race.
]]
local deadline, sample = ARGV[1], tonumber(ARGV[2])
local members, read = {}, {}
for i = 3, #ARGV, 2 do
  members[#members + 1] = ARGV[i]
  read[#members] = ARGV[i + 1]
end
if #members == 0 then return {} end
local token = tostring(redis.call('INCR', KEYS[7]))

local function readIfAny(cmd, key)
  if redis.call('EXISTS', key) == 1 then return redis.call(cmd, key, unpack(members)) end
  return {}
end
local dues = readIfAny('ZMSCORE', KEYS[5])
local attempts = readIfAny('HMGET', KEYS[4])
local gens = readIfAny('HMGET', KEYS[8])
local won, leases, records, out = {}, {}, {}, { token }
for i, member in ipairs(members) do
  local score = read[i]
  if score == '' then score = redis.call('ZSCORE', KEYS[1], member) end
  if score and redis.call('ZREM', KEYS[1], member) == 1 then
    won[#won + 1] = member
    leases[#leases + 1] = deadline
    leases[#leases + 1] = member
    records[#records + 1] = member
    records[#records + 1] = token .. '|' .. score .. '|' .. (dues[i] or '') .. '|' .. (gens[i] or '')
    local since = ''
    if #won <= sample then since = redis.call('ZSCORE', KEYS[6], member) or '' end
    out[#out + 1] = i
    out[#out + 1] = score
    out[#out + 1] = since
    out[#out + 1] = attempts[i] or '0'
  end
end
if #won > 0 then
  if #dues > 0 then redis.call('ZREM', KEYS[5], unpack(won)) end
  redis.call('ZADD', KEYS[2], unpack(leases))
  redis.call('HSET', KEYS[3], unpack(records))
end
return out
