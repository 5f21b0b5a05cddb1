-- ARGV: prefix, now, id, token, error entry, retry_at ('' for none), rk, reason
-- Returns the new state, or an error reply CONVEYOR_LEASE_LOST.
local now, id, token = ARGV[2], ARGV[3], ARGV[4]
NOW_HINT = ARGV[2]
if not held(id, token) then
  return redis.error_reply('CONVEYOR_LEASE_LOST ' .. id)
end
local jk = jkey(id)
local retry_at = ARGV[6]
redis.call('RPUSH', P .. ':errors:' .. id, ARGV[5])
redis.call('HDEL', jk, 'lease_token', 'lease_expires_at')
redis.call('HSET', jk, 'finished_at', now, 'cancel_requested', '0')
if retry_at ~= '' then
  redis.call('HSET', jk, 'run_at', retry_at, 'rk', ARGV[7])
  redis.call('HDEL', jk, 'failure_reason')
  return move(id, 'retrying')
end
redis.call('HSET', jk, 'failure_reason', ARGV[8])
move(id, 'failed')
propagate(id, now)
return 'failed'
