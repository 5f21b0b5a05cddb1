-- Management operations on a list of ids. ARGV: prefix, now, op, arg, arg2, id...
--   op 'cancel' (arg '1' = force): returns {cancelled, requested, skipped}
--   op 'retry' (arg = run_at, arg2 = rk): returns moved ids
--   op 'delete': returns the number deleted
local now, op, arg, arg2 = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
NOW_HINT = ARGV[2]
if op == 'cancel' then
  local cancelled, requested, skipped = {}, {}, {}
  for i = 6, #ARGV do
    local id = ARGV[i]
    local st = redis.call('HGET', jkey(id), 'state')
    if not st or TERMINAL[st] then
      table.insert(skipped, id)
    elseif job_problem(id) then
      -- Not decodable: to the DLQ as corrupt (terminal, so the cancel skips it).
      quarantine(id, job_problem(id), now, nil)
      table.insert(skipped, id)
    elseif st == 'processing' and arg ~= '1' then
      redis.call('HSET', jkey(id), 'cancel_requested', '1')
      table.insert(requested, id)
    else
      set_cancelled(id, now)
      table.insert(cancelled, id)
    end
  end
  return {cancelled, requested, skipped}
elseif op == 'retry' then
  local moved = {}
  for i = 6, #ARGV do
    local id = ARGV[i]
    local jk = jkey(id)
    local st = redis.call('HGET', jk, 'state')
    if st == 'failed' or st == 'cancelled' then
      redis.call('HSET', jk, 'attempt', '0', 'rescue_count', '0', 'run_at', arg, 'rk', arg2,
        'cancel_requested', '0')
      redis.call('HDEL', jk, 'failure_reason', 'finished_at', 'lease_token', 'lease_expires_at')
      if move(id, 'pending') == 'pending' then
        table.insert(moved, id)
      end
    end
  end
  if #moved > 0 then
    wake()
  end
  return moved
elseif op == 'delete' then
  local deleted = 0
  for i = 6, #ARGV do
    local id = ARGV[i]
    local st = redis.call('HGET', jkey(id), 'state')
    -- A hash that lost its state field (corrupt) can be deleted too.
    if st ~= 'processing' and redis.call('EXISTS', jkey(id)) == 1 then
      drop_job(id)
      deleted = deleted + 1
      if st ~= 'completed' then
        propagate(id, now)
      end
      redis.call('DEL', P .. ':dependents:' .. id)
    end
  end
  return deleted
end
return redis.error_reply('CONVEYOR_UNKNOWN_OPERATION ' .. op)
