--[[
  Check that Redis still holds this namespace's data: its epoch, written when the namespace was
  first used, vanishes when Redis loses its data (a restart without persistence, a failover to
  an empty replica, a flush); and its fence counter, which only grows, goes back when Redis lost
  its last writes (a failover to a replica that missed them: replication is asynchronous).

  Keys: epoch, policy, rebuild, fence, writers

  Args:
    ARGV[1] the epoch the caller knows ('' when it knows none: first use, or no durable record)
    ARGV[2] a new epoch to install when there is none, or when Redis went back in time
    ARGV[3] the fence floor: the highest fence value the caller knows Redis gave under the known
            epoch (its own replies, the database's record; 0 when none)
    ARGV[4] '1' when the caller saw Redis give a fence value it had given before under the known
            epoch (a mark's reply): Redis went back in time, whatever the counter is now
    ARGV[5] the caller's writer id ('' for none)
    ARGV[6] the highest generation Redis gave that writer's marks under the known epoch (0: none);
            an entry in `writers` below it means Redis lost the writer's last marks
    ARGV[7..] parent types to rebuild when a loss is found (none: rebuild nothing)

  Output: { status, epoch, policy present (1/0), parent types still to rebuild, fence }
    status 'ok'      the epoch is the one known (or the caller knew none and one exists), and
                     the fence counter is not below the floor
           'fresh'   there was none and the caller knew none: ARGV[2] is installed
           'lost'    there was none though the caller knew one: ARGV[2] is installed and the
                     types are queued in `rebuild` (type -> '' cursor). Exactly one caller sees
                     this for one loss: the others find the new epoch.
           'behind'  the known epoch is there but the counter is below the floor (or ARGV[4]
                     says the caller saw it go back, or the writer's entry is below ARGV[6]):
                     Redis lost its last writes; healed as 'lost' is
           'changed' another epoch than the known one: another process found the loss first
                     (and queued the rebuild), or reset the namespace; the caller adopts it
  The counter is raised to the floor when below it, so fencing tokens never repeat. `writers`
  keeps the newest WRITERS_KEPT of its entries once it holds twice as many (processes that
  ended leave theirs behind; a process whose entry went finds none, which proves nothing).
]]
local epoch, policy, rebuild, fence, writers = unpack(KEYS)
local WRITERS_KEPT = 500
local current = redis.call('GET', epoch)
local known, candidate, floor, sawBack = ARGV[1], ARGV[2], tonumber(ARGV[3]) or 0, ARGV[4] == '1'
local writer, ownFloor = ARGV[5], tonumber(ARGV[6]) or 0
local counter = tonumber(redis.call('GET', fence) or '0')
local status
if writer ~= '' and ownFloor > 0 then
  -- No entry proves nothing: pruned, or never replicated.
  local own = tonumber(redis.call('HGET', writers, writer) or '')
  if own and own < ownFloor then sawBack = true end
end
if current and (known == '' or current == known) then
  if known ~= '' and (counter < floor or sawBack) then status = 'behind' else status = 'ok' end
elseif current then
  status = 'changed'
else
  status = known == '' and 'fresh' or 'lost'
end
if status ~= 'ok' and status ~= 'changed' then
  redis.call('SET', epoch, candidate)
  current = candidate
end
if status == 'lost' or status == 'behind' then
  for i = 7, #ARGV do redis.call('HSET', rebuild, ARGV[i], '') end
end
if counter < floor then
  redis.call('SET', fence, floor)
  counter = floor
end
if redis.call('HLEN', writers) > 2 * WRITERS_KEPT then
  local flat, entries = redis.call('HGETALL', writers), {}
  for i = 1, #flat, 2 do entries[#entries + 1] = { flat[i], tonumber(flat[i + 1]) or 0 } end
  table.sort(entries, function(a, b) return a[2] < b[2] end)
  local old = {}
  for i = 1, #entries - WRITERS_KEPT do
    old[#old + 1] = entries[i][1]
    if #old == 1000 then
      redis.call('HDEL', writers, unpack(old))
      old = {}
    end
  end
  if #old > 0 then redis.call('HDEL', writers, unpack(old)) end
end
return { status, current, redis.call('EXISTS', policy), redis.call('HLEN', rebuild), tostring(counter) }
