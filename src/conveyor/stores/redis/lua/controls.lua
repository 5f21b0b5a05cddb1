-- Job controls on a list of ids, atomically. ARGV: prefix, op, value, id...
--   op 'priority' (value = the new priority): returns the changed ids
--   op 'queue' (value = the target queue): returns the changed ids
-- Only waiting jobs change (pending, scheduled, retrying, blocked). `move` keeps every
-- index in step: a pending job is re-filed in its queue's claim order under its new
-- priority, or taken out of the old queue's indexes and filed into the new queue's.
local op, value = ARGV[2], ARGV[3]
if op ~= 'priority' and op ~= 'queue' then
  return redis.error_reply('CONVEYOR_UNKNOWN_OPERATION ' .. op)
end
local MOVABLE = {pending = true, scheduled = true, retrying = true, blocked = true}
local changed = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local jk = jkey(id)
  local g = redis.call('HMGET', jk, 'state', 'queue')
  local st, queue = g[1], g[2]
  if st and MOVABLE[st] and not job_problem(id) then
    if op == 'priority' then
      redis.call('HSET', jk, 'priority', value)
      if st == 'pending' then
        move(id, 'pending')
      end
    elseif queue ~= value then
      move(id, nil)
      redis.call('HDEL', jk, 'state')
      redis.call('SREM', P .. ':queue:' .. queue, id)
      redis.call('HSET', jk, 'queue', value)
      redis.call('SADD', P .. ':queues', value)
      redis.call('SADD', P .. ':queue:' .. value, id)
      move(id, st)
    end
    if st == 'pending' then
      wake()
    end
    table.insert(changed, id)
  end
end
return changed
