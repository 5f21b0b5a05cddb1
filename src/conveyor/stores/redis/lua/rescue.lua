-- ARGV: prefix, now, limit, max_rescues, retry_at, rk, server_judged
-- Processing jobs whose lease expired (lease_expires_at < now) go to retrying or failed.
-- With server_judged = '1', Redis's own clock (TIME) decides which leases expired, so no
-- client's clock can; now still stamps what is written. Returns {retried ids, failed ids}.
local now, limit, max_rescues = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local retry_at, rk = ARGV[5], ARGV[6]
local retried, failed = {}, {}
if limit <= 0 then
  return {retried, failed}
end
local expire_before = now
if ARGV[7] == '1' then
  local t = redis.call('TIME')
  expire_before = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end
local expired = redis.call('ZRANGEBYSCORE', P .. ':processing', '-inf', '(' .. expire_before,
  'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  local jk = jkey(id)
  local g = redis.call('HMGET', jk, 'attempt', 'max_attempts', 'rescue_count', 'worker_id',
    'started_at')
  local rescues = tonumber(g[3]) + 1
  local reason = nil
  if rescues >= max_rescues then
    reason = 'poison'
  elseif tonumber(g[1]) >= tonumber(g[2]) then
    reason = 'exhausted'
  end
  local sep = '\31'
  redis.call('RPUSH', P .. ':errors:' .. id,
    'R' .. g[1] .. sep .. (g[4] or '') .. sep .. (g[5] or '') .. sep .. now)
  redis.call('HDEL', jk, 'lease_token', 'lease_expires_at')
  redis.call('HSET', jk, 'rescue_count', rescues, 'finished_at', now, 'cancel_requested', '0')
  if reason then
    redis.call('HSET', jk, 'failure_reason', reason)
    move(id, 'failed')
    table.insert(failed, id)
    propagate(id, now)
  else
    redis.call('HDEL', jk, 'failure_reason')
    redis.call('HSET', jk, 'run_at', retry_at, 'rk', rk)
    move(id, 'retrying')
    table.insert(retried, id)
  end
end
return {retried, failed}
