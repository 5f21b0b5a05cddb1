-- Shared helpers, prepended to every Conveyor script. ARGV[1] is the key prefix; every
-- key is built from it. Numbers arrive as strings formatted by Python and are stored
-- as given (never re-encoded), so floats and large integers round-trip exactly.
local P = ARGV[1]
local WOKE = false
-- The script's `now`, when it has one: the time a job diverted by `move` is quarantined at.
local NOW_HINT = nil
local TERMINAL = {completed = true, failed = true, cancelled = true}
local STATES = {pending = true, scheduled = true, blocked = true, processing = true,
  retrying = true, completed = true, failed = true, cancelled = true}
local POLICIES = {fail = true, cancel = true}

local function jkey(id)
  return P .. ':job:' .. id
end

-- Tell waiting workers that work may be available (at most once per script run).
local function wake()
  if not WOKE then
    redis.call('PUBLISH', P .. ':wake', '1')
    WOKE = true
  end
end

local function is_int(value)
  return value ~= false and value ~= nil and string.match(value, '^-?%d+$') ~= nil
end

local function is_float(value)
  return value ~= false and value ~= nil and tonumber(value) ~= nil
end

-- A stored value as short printable text, for an error message.
local function shown(value)
  local text = string.gsub(string.sub(tostring(value), 1, 40), '[^%w%p ]', '?')
  return text
end

-- Why the job's hash cannot be decoded into a Job (nil when it can). Read-only (one HMGET,
-- and HEXISTS for the payload, which is never copied into the script): a script calls it
-- before it writes, so a corrupt hash never leaves a script half-applied. Also returns the
-- fields read (CHECKED order: `state` is [4], `queue` [2], `pm` [12]), so a caller needs
-- no second read.
local CHECKED = {'id', 'queue', 'task', 'state', 'on_dependency_failure',
  'priority', 'attempt', 'max_attempts', 'task_version', 'run_at', 'created_at', 'pm'}
local function job_problem(id)
  local jk = jkey(id)
  local g = redis.call('HMGET', jk, unpack(CHECKED))
  if not g[1] and redis.call('EXISTS', jk) == 0 then
    return 'the job hash is missing', g
  end
  for i = 1, 5 do
    if not g[i] then
      return 'missing field ' .. CHECKED[i], g
    end
  end
  if g[1] ~= id then
    return 'field id does not match its key: ' .. shown(g[1]), g
  end
  if redis.call('HEXISTS', jk, 'payload') == 0 then
    return 'missing field payload', g
  end
  if not STATES[g[4]] then
    return 'unknown state ' .. shown(g[4]), g
  end
  if not POLICIES[g[5]] then
    return 'unknown on_dependency_failure ' .. shown(g[5]), g
  end
  for i = 6, 9 do
    if not is_int(g[i]) then
      return 'field ' .. CHECKED[i] .. ' is not an integer: ' .. shown(g[i] or 'missing'), g
    end
  end
  for i = 10, 11 do
    if not is_float(g[i]) then
      return 'field ' .. CHECKED[i] .. ' is not a number: ' .. shown(g[i] or 'missing'), g
    end
  end
  return nil, g
end

-- Why the job cannot be filed in the index of state `to` (nil when it can); read-only.
local function placement_problem(id, to)
  local g = redis.call('HMGET', jkey(id), 'queue', 'priority', 'rk', 'run_at')
  if not g[1] then
    return 'missing field queue'
  end
  if to == 'pending' then
    if not is_int(g[2]) then
      return 'field priority is not an integer: ' .. shown(g[2] or 'missing')
    end
    if not g[3] or #g[3] ~= 16 then
      return 'field rk is not a 16-digit sort key: ' .. shown(g[3] or 'missing')
    end
  end
  if (to == 'pending' or to == 'scheduled' or to == 'retrying') and not is_float(g[4]) then
    return 'field run_at is not a number: ' .. shown(g[4] or 'missing')
  end
  return nil
end

-- The current time for a script that was given none (Redis replicates effects, so TIME is
-- allowed before writes).
local function server_now()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end

-- Take `id` out of every state set and index, whatever its hash says (it may lie or be
-- gone); `queue` is its queue, or nil when unknown (then only the state sets are cleaned).
local function unindex(id, queue, stored_state)
  local names = {}
  for state in pairs(STATES) do
    table.insert(names, state)
  end
  if stored_state and not STATES[stored_state] then
    table.insert(names, stored_state)
  end
  for _, state in ipairs(names) do
    if redis.call('SREM', P .. ':state:' .. state, id) == 1 and queue then
      redis.call('HINCRBY', P .. ':counts:' .. queue, state, -1)
    end
    if TERMINAL[state] then
      redis.call('ZREM', P .. ':finished:' .. state, id)
    end
  end
  redis.call('ZREM', P .. ':due', id)
  redis.call('ZREM', P .. ':processing', id)
  if queue then
    local pm = redis.call('HGET', jkey(id), 'pm')
    if pm then
      redis.call('ZREM', P .. ':q:' .. queue .. ':pending', pm)
    end
    redis.call('ZREM', P .. ':q:' .. queue .. ':ready', id)
  end
end

local propagate

-- The queue whose member set holds `id` (for a job whose hash lost its queue), or nil.
local function queue_of(id)
  for _, queue in ipairs(redis.call('SMEMBERS', P .. ':queues')) do
    if redis.call('SISMEMBER', P .. ':queue:' .. queue, id) == 1 then
      return queue
    end
  end
  return nil
end

-- Move a job whose hash cannot be decoded to the DLQ: state failed, reason corrupt, the
-- decode error as its last error entry; its dependents get their policy. `queue` names its
-- queue when the hash lost that field (nil: unknown). A job whose hash is gone is only
-- taken out of every index. Counted in {prefix}:repairs ('corrupt', 'missing').
local function quarantine(id, why, now, queue)
  local jk = jkey(id)
  now = now or NOW_HINT or server_now()
  queue = redis.call('HGET', jk, 'queue') or queue or queue_of(id)
  if redis.call('EXISTS', jk) == 0 then
    -- Nothing left to show: drop what still points at the job; dependents get their policy.
    unindex(id, queue, nil)
    if queue then
      redis.call('SREM', P .. ':queue:' .. queue, id)
    end
    redis.call('ZREM', P .. ':created', id)
    redis.call('DEL', P .. ':errors:' .. id)
    redis.call('HINCRBY', P .. ':repairs', 'missing', 1)
    propagate(id, now)
    return
  end
  local g = redis.call('HMGET', jk, 'state', 'queue', 'attempt')
  queue = g[2] or queue
  unindex(id, queue, g[1])
  if queue and not g[2] then
    redis.call('HSET', jk, 'queue', queue)
  end
  local attempt = '0'
  if is_int(g[3]) then
    attempt = g[3]
  end
  redis.call('RPUSH', P .. ':errors:' .. id, 'J{"attempt": ' .. attempt ..
    ', "type": "CorruptJob", "message": ' .. cjson.encode('stored job cannot be decoded: ' .. why) ..
    ', "traceback": "", "worker_id": "", "started_at": null, "failed_at": ' .. now .. '}')
  redis.call('HDEL', jk, 'lease_token', 'lease_expires_at')
  redis.call('HSET', jk, 'state', 'failed', 'failure_reason', 'corrupt', 'finished_at', now,
    'cancel_requested', '0')
  redis.call('SADD', P .. ':state:failed', id)
  redis.call('ZADD', P .. ':finished:failed', now, id)
  if queue then
    redis.call('HINCRBY', P .. ':counts:' .. queue, 'failed', 1)
  end
  redis.call('HINCRBY', P .. ':repairs', 'corrupt', 1)
  propagate(id, now)
end

-- Move a job to state `to` (nil: drop it from every index), keeping every index in step:
-- state sets, per-queue counts, the pending/ready sorted sets, due, processing and the
-- finished sets. Fields the target index needs (run_at, rk, lease_expires_at,
-- finished_at) must be written before the call.
local function move(id, to)
  local jk = jkey(id)
  if to == 'pending' or to == 'scheduled' or to == 'retrying' then
    local problem = placement_problem(id, to)
    if problem then
      quarantine(id, problem, nil, nil)
      return 'failed'
    end
  end
  local f = redis.call('HMGET', jk, 'state', 'queue', 'pm')
  local from, queue = f[1], f[2]
  if from then
    redis.call('SREM', P .. ':state:' .. from, id)
    redis.call('HINCRBY', P .. ':counts:' .. queue, from, -1)
    if from == 'pending' then
      redis.call('ZREM', P .. ':q:' .. queue .. ':pending', f[3])
      redis.call('ZREM', P .. ':q:' .. queue .. ':ready', id)
    elseif from == 'scheduled' or from == 'retrying' then
      redis.call('ZREM', P .. ':due', id)
    elseif from == 'processing' then
      redis.call('ZREM', P .. ':processing', id)
    elseif TERMINAL[from] then
      redis.call('ZREM', P .. ':finished:' .. from, id)
    end
  end
  if not to then
    return nil
  end
  redis.call('HSET', jk, 'state', to)
  redis.call('SADD', P .. ':state:' .. to, id)
  redis.call('HINCRBY', P .. ':counts:' .. queue, to, 1)
  if to == 'pending' then
    local g = redis.call('HMGET', jk, 'priority', 'rk', 'run_at')
    local pm = g[2] .. ':' .. id
    redis.call('HSET', jk, 'pm', pm)
    redis.call('ZADD', P .. ':q:' .. queue .. ':pending', -tonumber(g[1]), pm)
    redis.call('ZADD', P .. ':q:' .. queue .. ':ready', g[3], id)
  elseif to == 'scheduled' or to == 'retrying' then
    redis.call('ZADD', P .. ':due', redis.call('HGET', jk, 'run_at'), id)
  elseif to == 'processing' then
    redis.call('ZADD', P .. ':processing', redis.call('HGET', jk, 'lease_expires_at'), id)
  elseif TERMINAL[to] then
    redis.call('ZADD', P .. ':finished:' .. to, redis.call('HGET', jk, 'finished_at'), id)
  end
  return to
end

-- Pop the list of jobs waiting on `id`.
local function take_dependents(id)
  local key = P .. ':dependents:' .. id
  local ids = redis.call('LRANGE', key, 0, -1)
  redis.call('DEL', key)
  return ids
end

-- Fail or cancel (by each one's policy) every blocked job waiting on `id`, transitively.
propagate = function(id, now)
  local todo = take_dependents(id)
  while #todo > 0 do
    local dep = table.remove(todo)
    local jk = jkey(dep)
    local g = redis.call('HMGET', jk, 'state', 'on_dependency_failure')
    local problem = g[1] == 'blocked' and job_problem(dep)
    if problem then
      quarantine(dep, problem, now, nil)
    elseif g[1] == 'blocked' then
      local target = 'cancelled'
      if g[2] == 'fail' then
        target = 'failed'
      end
      redis.call('HSET', jk, 'failure_reason', 'dependency_failed', 'finished_at', now)
      move(dep, target)
      for _, more in ipairs(take_dependents(dep)) do
        table.insert(todo, more)
      end
    end
  end
end

-- Unblock the dependents whose last open dependency was `id`.
local function release_dependents(id, now)
  for _, dep in ipairs(take_dependents(id)) do
    local jk = jkey(dep)
    local g = redis.call('HMGET', jk, 'state', 'blocked_by', 'run_at')
    local problem = g[1] == 'blocked' and job_problem(dep)
    if problem then
      quarantine(dep, problem, now, nil)
    elseif g[1] == 'blocked' then
      local left = (tonumber(g[2]) or 1) - 1
      if left > 0 then
        redis.call('HSET', jk, 'blocked_by', left)
      else
        redis.call('HSET', jk, 'blocked_by', 0)
        local run_at = tonumber(g[3])
        if run_at and run_at > tonumber(now) then
          move(dep, 'scheduled')
        elseif move(dep, 'pending') == 'pending' then
          wake()
        end
      end
    end
  end
end

-- The lease check: the job is processing under this token.
local function held(id, token)
  local g = redis.call('HMGET', jkey(id), 'state', 'lease_token')
  return g[1] == 'processing' and g[2] == token
end

-- End a job as cancelled (user cancel or honoured cancel) and apply dependents' policy.
local function set_cancelled(id, now)
  local jk = jkey(id)
  redis.call('HDEL', jk, 'lease_token', 'lease_expires_at')
  redis.call('HSET', jk, 'finished_at', now, 'failure_reason', 'cancelled', 'cancel_requested', '0')
  move(id, 'cancelled')
  propagate(id, now)
end

-- A job as returned to Python: its hash and its error list.
local function dump(id)
  return {redis.call('HGETALL', jkey(id)), redis.call('LRANGE', P .. ':errors:' .. id, 0, -1)}
end

-- Remove a job and everything that belongs to it.
local function drop_job(id)
  local g = redis.call('HMGET', jkey(id), 'queue', 'state')
  local queue = g[1] or queue_of(id)
  if queue and g[1] and STATES[g[2]] then
    move(id, nil)
  else
    unindex(id, queue, g[2])
  end
  if queue then
    redis.call('SREM', P .. ':queue:' .. queue, id)
  end
  redis.call('ZREM', P .. ':created', id)
  redis.call('DEL', jkey(id), P .. ':errors:' .. id, P .. ':steps:' .. id)
  redis.call('SREM', P .. ':parents', id)
end

-- Whether a chain step that reads `id`'s result (its parent_id; the set steps:<id>,
-- written at enqueue) is not terminal yet: the pruner keeps `id` until then.
local function needed_by_step(id)
  for _, step in ipairs(redis.call('SMEMBERS', P .. ':steps:' .. id)) do
    local st = redis.call('HGET', jkey(step), 'state')
    if st and not TERMINAL[st] then
      return true
    end
  end
  return false
end
