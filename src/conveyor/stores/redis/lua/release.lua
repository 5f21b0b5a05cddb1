-- ARGV: prefix, now, id, token, target ('pending' or 'scheduled'), run_at ('' keep), rk
local id, token, target = ARGV[3], ARGV[4], ARGV[5]
NOW_HINT = ARGV[2]
if not held(id, token) then
  return redis.error_reply('CONVEYOR_LEASE_LOST ' .. id)
end
local jk = jkey(id)
local problem = job_problem(id)
if problem then
  quarantine(id, problem, ARGV[2], nil)
  return 1
end
local attempt = tonumber(redis.call('HGET', jk, 'attempt')) - 1
if attempt < 0 then
  attempt = 0
end
redis.call('HSET', jk, 'attempt', attempt)
if ARGV[6] ~= '' then
  redis.call('HSET', jk, 'run_at', ARGV[6], 'rk', ARGV[7])
end
redis.call('HDEL', jk, 'lease_token', 'lease_expires_at', 'worker_id', 'started_at',
  'heartbeat_at')
if move(id, target) == 'pending' then
  wake()
end
return 1
