-- Complete a batch, then claim, in one atomic step.
-- ARGV: prefix, now, ncompletions, [id, token, has_result, result]*n,
--       worker, expires, mode ('q' queues or 'ids'), limit, nsel, sel..., token*limit
-- Returns {lost ids, claimed jobs (each dump())}.
local now = ARGV[2]
local nc = tonumber(ARGV[3])
local pos = 4
local lost = {}
for _ = 1, nc do
  local id, token, has, result = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2], ARGV[pos + 3]
  pos = pos + 4
  if held(id, token) then
    local jk = jkey(id)
    if has == '1' then
      redis.call('HSET', jk, 'result', result)
    else
      redis.call('HDEL', jk, 'result')
    end
    redis.call('HDEL', jk, 'lease_token', 'lease_expires_at')
    redis.call('HSET', jk, 'finished_at', now, 'cancel_requested', '0')
    move(id, 'completed')
    release_dependents(id, now)
  else
    table.insert(lost, id)
  end
end

local worker, expires, mode = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2]
local limit = tonumber(ARGV[pos + 3])
local nsel = tonumber(ARGV[pos + 4])
local sel = {}
for i = 1, nsel do
  sel[i] = ARGV[pos + 4 + i]
end
local tokens = pos + 5 + nsel

local chosen = {}
if limit > 0 then
  if mode == 'ids' then
    for _, id in ipairs(sel) do
      if #chosen >= limit then
        break
      end
      if redis.call('HGET', jkey(id), 'state') == 'pending' then
        table.insert(chosen, id)
      end
    end
  else
    for _, queue in ipairs(sel) do
      local room = limit - #chosen
      if room <= 0 then
        break
      end
      local members = redis.call('ZRANGE', P .. ':q:' .. queue .. ':pending', 0, room - 1)
      for _, m in ipairs(members) do
        table.insert(chosen, string.sub(m, 18))
      end
    end
  end
end

local claimed = {}
for i, id in ipairs(chosen) do
  local jk = jkey(id)
  redis.call('HINCRBY', jk, 'attempt', 1)
  redis.call('HSET', jk, 'lease_token', ARGV[tokens + i - 1], 'lease_expires_at', expires,
    'worker_id', worker, 'started_at', now, 'heartbeat_at', now, 'cancel_requested', '0')
  redis.call('HDEL', jk, 'finished_at')
  move(id, 'processing')
  table.insert(claimed, dump(id))
end
return {lost, claimed}
