--[[
  Acknowledge recomputed parents: end each lease whose claim token still matches, and put
  back to pending the heat of marks that arrived during the recompute.

  Input:
    KEYS[1] leases  KEYS[2] claims  KEYS[3] pending  KEYS[4] since
    KEYS[5] dirty   KEYS[6] dirtyAt KEYS[7] attempts
    ARGV[1..] triples: member, claim token, base (priority base of the member's score);
              the caller bounds their number

  Output: { acked, rearmed, lost } where lost counts leases that had expired and were
  given to another worker (their ack changes nothing).
]]
local members, tokens, bases = {}, {}, {}
for i = 1, #ARGV, 3 do
  members[#members + 1] = ARGV[i]
  tokens[#members] = ARGV[i + 1] .. '|'
  bases[#members] = tonumber(ARGV[i + 2])
end
if #members == 0 then return { 0, 0, 0 } end

local records = redis.call('HMGET', KEYS[2], unpack(members))
local heats = redis.call('HMGET', KEYS[5], unpack(members))
local ours, rearm, lost = {}, {}, 0
for i, member in ipairs(members) do
  local record = records[i]
  if record and string.sub(record, 1, #tokens[i]) == tokens[i] then
    ours[#ours + 1] = member
    if heats[i] then
      rearm[#rearm + 1] = member
      redis.call('ZINCRBY', KEYS[3], string.format('%.17g', bases[i] + tonumber(heats[i])), member)
      redis.call('ZADD', KEYS[4], 'NX', redis.call('HGET', KEYS[6], member), member)
    end
  else
    lost = lost + 1
  end
end
if #ours > 0 then
  redis.call('ZREM', KEYS[1], unpack(ours))
  redis.call('HDEL', KEYS[2], unpack(ours))
  redis.call('HDEL', KEYS[7], unpack(ours))
end
if #rearm > 0 then
  redis.call('HDEL', KEYS[5], unpack(rearm))
  redis.call('HDEL', KEYS[6], unpack(rearm))
end
return { #ours, #rearm, lost }
