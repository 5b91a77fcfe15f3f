--[[
  Check that Redis still holds this namespace's data: its epoch, written when the namespace was
  first used, vanishes when Redis loses its data (a restart without persistence, a failover to
  an empty replica, a flush).

  Input:
    KEYS[1] epoch  KEYS[2] policy  KEYS[3] rebuild
    ARGV[1] the epoch the caller knows ('' when it knows none: first use, or no durable record)
    ARGV[2] a new epoch to install when there is none
    ARGV[3..] parent types to rebuild when a loss is found (none: rebuild nothing)

  Output: { status, epoch, policy present (1/0), parent types still to rebuild }
    status 'ok'      the epoch is the one known (or the caller knew none and one exists)
           'fresh'   there was none and the caller knew none: ARGV[2] is installed
           'lost'    there was none though the caller knew one: ARGV[2] is installed and the
                     types are queued in `rebuild` (type -> '' cursor). Exactly one caller sees
                     this for one loss: the others find the new epoch.
           'changed' another epoch than the known one: another process found the loss first
                     (and queued the rebuild); the caller adopts it
]]
local current = redis.call('GET', KEYS[1])
local known = ARGV[1]
local status
if current then
  status = (known == '' or current == known) and 'ok' or 'changed'
else
  redis.call('SET', KEYS[1], ARGV[2])
  current = ARGV[2]
  if known == '' then
    status = 'fresh'
  else
    status = 'lost'
    for i = 3, #ARGV do redis.call('HSET', KEYS[3], ARGV[i], '') end
  end
end
return { status, current, redis.call('EXISTS', KEYS[2]), redis.call('HLEN', KEYS[3]) }
