-- ARGV: prefix, now, id, token, target ('pending' or 'scheduled'), run_at ('' keep), rk
-- (after leased.lua)
local target = ARGV[5]
local problem = job_problem(id)
if problem then
  quarantine(id, problem, now, nil)
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
