-- ARGV: prefix, now, limit, max_rescues, retry_at, rk, server_judged
-- Processing jobs whose lease expired (lease_expires_at < now) go to retrying or failed;
-- one whose hash cannot be decoded is quarantined (failed, corrupt) before anything is
-- written for it. With server_judged = '1', Redis's own clock (TIME) decides which leases
-- expired, so no client's clock can; now still stamps what is written.
-- Returns {retried ids, failed ids}.
local now, limit, max_rescues = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local retry_at, rk = ARGV[5], ARGV[6]
NOW_HINT = ARGV[2]
local retried, failed = {}, {}
if limit <= 0 then
  return {retried, failed}
end

-- Record the lost lease of a decodable job and move it on (retrying or failed).
local function rescue(id)
  local jk = jkey(id)
  local g = redis.call('HMGET', jk, 'attempt', 'max_attempts', 'rescue_count', 'worker_id',
    'started_at')
  local rescues = (tonumber(g[3]) or 0) + 1
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
    propagate(id, now)
    return 'failed'
  end
  redis.call('HDEL', jk, 'failure_reason')
  redis.call('HSET', jk, 'run_at', retry_at, 'rk', rk)
  return move(id, 'retrying')
end

local expire_before = now
if ARGV[7] == '1' then
  local t = redis.call('TIME')
  expire_before = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end
local expired = redis.call('ZRANGEBYSCORE', P .. ':processing', '-inf', '(' .. expire_before,
  'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  local st = redis.call('HGET', jkey(id), 'state')
  local problem = job_problem(id)
  if st and st ~= 'processing' and not problem then
    -- An entry whose job is not processing: drop it; the job is not re-run.
    redis.call('ZREM', P .. ':processing', id)
    redis.call('HINCRBY', P .. ':repairs', 'index', 1)
  elseif problem then
    quarantine(id, problem, now, nil)
    if st then
      table.insert(failed, id)
    end
  elseif rescue(id) == 'retrying' then
    table.insert(retried, id)
  else
    table.insert(failed, id)
  end
end
return {retried, failed}
