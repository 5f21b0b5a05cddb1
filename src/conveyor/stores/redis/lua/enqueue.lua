-- The atomic step of an enqueue planned in Python (conveyor.stores.enqueue_plan).
-- ARGV: prefix, mode ('read' or 'write'), then what the plan read:
--   nids id... nunique key... nidem key...
-- 'read' returns the observation: per id its state; per unique key job, expires and
-- the holder's state; per idempotency key job, expires, fingerprint and the holder's
-- state ('' for anything absent).
-- 'write' also takes the observation the plan was made from, then
--   now n, per job (dependencies first):
--   id queue task payload priority max_attempts run_at rk timeout policy parent tags
--   unique_key unique_expires idem_key idem_expires fingerprint task_version
--   depends_on state nopen open...
-- It returns 0, writing nothing, if the observation changed since (the caller plans
-- again), else checks every id is new, writes every job and returns 1.

local function holder_state(id)
  if not id then
    return ''
  end
  return redis.call('HGET', jkey(id), 'state') or ''
end

local function observe()
  local obs = {}
  local pos = 3
  local n = tonumber(ARGV[pos])
  for i = 1, n do
    obs[#obs + 1] = redis.call('HGET', jkey(ARGV[pos + i]), 'state') or ''
  end
  pos = pos + n + 1
  n = tonumber(ARGV[pos])
  for i = 1, n do
    local h = redis.call('HMGET', P .. ':unique:' .. ARGV[pos + i], 'job', 'expires')
    obs[#obs + 1] = h[1] or ''
    obs[#obs + 1] = h[2] or ''
    obs[#obs + 1] = holder_state(h[1])
  end
  pos = pos + n + 1
  n = tonumber(ARGV[pos])
  for i = 1, n do
    local h = redis.call('HMGET', P .. ':idem:' .. ARGV[pos + i], 'job', 'expires',
      'fingerprint')
    obs[#obs + 1] = h[1] or ''
    obs[#obs + 1] = h[2] or ''
    obs[#obs + 1] = h[3] or ''
    obs[#obs + 1] = holder_state(h[1])
  end
  return obs, pos + n + 1
end

local obs, pos = observe()
if ARGV[2] == 'read' then
  return obs
end
for i = 1, #obs do
  if obs[i] ~= ARGV[pos + i - 1] then
    return 0
  end
end
pos = pos + #obs
local now = ARGV[pos]
local n = tonumber(ARGV[pos + 1])
pos = pos + 2
local NF = 20
local jobs = {}
for i = 1, n do
  local j = {}
  for f = 1, NF do
    j[f] = ARGV[pos + f - 1]
  end
  local nopen = tonumber(ARGV[pos + NF])
  j.open = {}
  for d = 1, nopen do
    j.open[d] = ARGV[pos + NF + d]
  end
  pos = pos + NF + 1 + nopen
  if redis.call('EXISTS', jkey(j[1])) == 1 then
    return redis.error_reply('CONVEYOR_DUPLICATE_ID ' .. j[1])
  end
  jobs[i] = j
end

for _, j in ipairs(jobs) do
  local id, state = j[1], j[20]
  local jk = jkey(id)
  redis.call('HSET', jk, 'id', id, 'queue', j[2], 'task', j[3], 'payload', j[4],
    'priority', j[5], 'max_attempts', j[6], 'run_at', j[7], 'rk', j[8],
    'on_dependency_failure', j[10], 'tags', j[12], 'task_version', j[18],
    'depends_on', j[19], 'attempt', '0', 'rescue_count', '0', 'cancel_requested', '0',
    'created_at', now, 'blocked_by', #j.open)
  local optional = {timeout = j[9], parent_id = j[11], unique_key = j[13],
    idempotency_key = j[15]}
  for field, value in pairs(optional) do
    if value ~= '' then
      redis.call('HSET', jk, field, value)
    end
  end
  if state == 'failed' or state == 'cancelled' then
    redis.call('HSET', jk, 'failure_reason', 'dependency_failed', 'finished_at', now)
  end
  move(id, state)
  redis.call('SADD', P .. ':queues', j[2])
  redis.call('SADD', P .. ':queue:' .. j[2], id)
  redis.call('ZADD', P .. ':created', now, id)
  for _, d in ipairs(j.open) do
    redis.call('RPUSH', P .. ':dependents:' .. d, id)
  end
  if j[11] ~= '' then
    redis.call('SADD', P .. ':steps:' .. j[11], id)
    redis.call('SADD', P .. ':parents', j[11])
  end
  if j[13] ~= '' then
    redis.call('HSET', P .. ':unique:' .. j[13], 'job', id, 'expires', j[14])
    redis.call('SADD', P .. ':uniques', j[13])
  end
  if j[15] ~= '' then
    redis.call('HSET', P .. ':idem:' .. j[15], 'job', id, 'expires', j[16],
      'fingerprint', j[17])
    redis.call('SADD', P .. ':idems', j[15])
  end
  if state == 'pending' then
    wake()
  end
end
return 1
