--[[
  Claim parents read by the caller (ZREVRANGE of pending, or the overdue ones of `due`): a
  checked ZREM per member decides who owns it, and the winner records a lease.

  Input:
    KEYS[1] pending  KEYS[2] leases  KEYS[3] claims  KEYS[4] attempts  KEYS[5] due  KEYS[6] since
    ARGV[1] lease deadline (ms)
    ARGV[2] claim token (no '|')
    ARGV[3] how many of the claimed members to report the first-mark time of (a sample)
    ARGV[4..] pairs: member, score as read by the caller ('' when not read); the caller bounds
              their number

  The claim record kept in `claims` is "token|score|due". The score is the one the caller
  read (a mark landing between that read and this claim is covered by the recompute, and only
  its heat is missing from the record). The first mark stays in `since` until the ack.

  Output: flat array, per claimed member: member, score, since ('' if not sampled), attempts so far.
  A member missing from the output lost the race to another worker.
]]
local deadline, token, sample = ARGV[1], ARGV[2], tonumber(ARGV[3])
local members, read = {}, {}
for i = 4, #ARGV, 2 do
  members[#members + 1] = ARGV[i]
  read[#members] = ARGV[i + 1]
end
if #members == 0 then return {} end

-- Sets that are usually empty are read only when they exist: this runs for every parent.
local function readIfAny(cmd, key)
  if redis.call('EXISTS', key) == 1 then return redis.call(cmd, key, unpack(members)) end
  return {}
end
local dues = readIfAny('ZMSCORE', KEYS[5])
local attempts = readIfAny('HMGET', KEYS[4])
local won, leases, records, out = {}, {}, {}, {}
for i, member in ipairs(members) do
  local score = read[i]
  if score == '' then score = redis.call('ZSCORE', KEYS[1], member) end
  if score and redis.call('ZREM', KEYS[1], member) == 1 then
    won[#won + 1] = member
    leases[#leases + 1] = deadline
    leases[#leases + 1] = member
    records[#records + 1] = member
    records[#records + 1] = token .. '|' .. score .. '|' .. (dues[i] or '')
    local since = ''
    if #won <= sample then since = redis.call('ZSCORE', KEYS[6], member) or '' end
    out[#out + 1] = member
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
