-- Complete a batch, then claim, in one atomic step.
-- ARGV: prefix, now, ncompletions, [id, token, has_result, result]*n,
--       worker, expires, mode ('q' queues or 'ids'), limit, nsel, sel..., token*limit
-- Returns {lost ids, claimed jobs (each dump()), ids of pending entries dropped (job not
-- pending, or gone), {id, reason} of jobs quarantined as corrupt}.
local now = ARGV[2]
NOW_HINT = ARGV[2]
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

local claimed, dropped, corrupt = {}, {}, {}

-- Lease one pending job whose hash decodes.
local function take(id)
  local jk = jkey(id)
  redis.call('HINCRBY', jk, 'attempt', 1)
  redis.call('HSET', jk, 'lease_token', ARGV[tokens + #claimed], 'lease_expires_at', expires,
    'worker_id', worker, 'started_at', now, 'heartbeat_at', now, 'cancel_requested', '0')
  redis.call('HDEL', jk, 'finished_at')
  move(id, 'processing')
  table.insert(claimed, dump(id))
end

-- Whether the entry `member` of queue's pending set is a job to lease. An entry whose job
-- is not pending (or is filed under another member) is dropped; a job whose hash cannot be
-- decoded is quarantined; both are counted, so a bad entry is never leased, nor seen again.
local function admit(queue, member)
  local id = string.sub(member, 18)
  local pending = P .. ':q:' .. queue .. ':pending'
  local problem, f = job_problem(id)
  if problem then
    redis.call('ZREM', pending, member)
    quarantine(id, problem, now, queue)
    table.insert(corrupt, {id, problem})
    return false
  end
  local state, pm = f[4], f[12]
  if state == 'pending' and f[2] == queue and not pm then
    redis.call('HSET', jkey(id), 'pm', member) -- its entry lost only its back-reference
    pm = member
  end
  if state ~= 'pending' or pm ~= member or f[2] ~= queue then
    redis.call('ZREM', pending, member)
    if state ~= 'pending' or f[2] ~= queue then
      redis.call('ZREM', P .. ':q:' .. queue .. ':ready', id)
    end
    redis.call('HINCRBY', P .. ':repairs', 'index', 1)
    table.insert(dropped, id)
    return false
  end
  return true
end

if limit > 0 then
  if mode == 'ids' then
    for _, id in ipairs(sel) do
      if #claimed >= limit then
        break
      end
      if redis.call('HGET', jkey(id), 'state') == 'pending' then
        local problem = job_problem(id)
        if problem then
          quarantine(id, problem, now, nil)
          table.insert(corrupt, {id, problem})
        else
          take(id)
        end
      end
    end
  else
    -- Every entry looked at leaves the pending set (leased, dropped or quarantined), so the
    -- loop ends; the budget bounds the repairs one call makes.
    local budget = limit + 1000
    for _, queue in ipairs(sel) do
      local pending = P .. ':q:' .. queue .. ':pending'
      while #claimed < limit and budget > 0 do
        local members = redis.call('ZRANGE', pending, 0, limit - #claimed - 1)
        if #members == 0 then
          break
        end
        for _, m in ipairs(members) do
          budget = budget - 1
          if admit(queue, m) then
            take(string.sub(m, 18))
          end
        end
      end
    end
  end
end
return {lost, claimed, dropped, corrupt}
