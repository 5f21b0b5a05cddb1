-- Shared helpers, prepended to every Conveyor script. ARGV[1] is the key prefix; every
-- key is built from it. Numbers arrive as strings formatted by Python and are stored
-- as given (never re-encoded), so floats and large integers round-trip exactly.
local P = ARGV[1]
local WOKE = false
local TERMINAL = {completed = true, failed = true, cancelled = true}

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

-- Move a job to state `to` (nil: drop it from every index), keeping every index in step:
-- state sets, per-queue counts, the pending/ready sorted sets, due, processing and the
-- finished sets. Fields the target index needs (run_at, rk, lease_expires_at,
-- finished_at) must be written before the call.
local function move(id, to)
  local jk = jkey(id)
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
    return
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
end

-- Pop the list of jobs waiting on `id`.
local function take_dependents(id)
  local key = P .. ':dependents:' .. id
  local ids = redis.call('LRANGE', key, 0, -1)
  redis.call('DEL', key)
  return ids
end

-- Fail or cancel (by each one's policy) every blocked job waiting on `id`, transitively.
local function propagate(id, now)
  local todo = take_dependents(id)
  while #todo > 0 do
    local dep = table.remove(todo)
    local jk = jkey(dep)
    local g = redis.call('HMGET', jk, 'state', 'on_dependency_failure')
    if g[1] == 'blocked' then
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
    if g[1] == 'blocked' then
      local left = tonumber(g[2]) - 1
      if left > 0 then
        redis.call('HSET', jk, 'blocked_by', left)
      else
        redis.call('HSET', jk, 'blocked_by', 0)
        if tonumber(g[3]) > tonumber(now) then
          move(dep, 'scheduled')
        else
          move(dep, 'pending')
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
  local queue = redis.call('HGET', jkey(id), 'queue')
  move(id, nil)
  redis.call('SREM', P .. ':queue:' .. queue, id)
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
