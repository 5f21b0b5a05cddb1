-- ARGV: prefix, now, id, token, error entry, retry_at ('' for none), rk, reason
-- (after leased.lua). Returns the new state, or an error reply CONVEYOR_LEASE_LOST.
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
