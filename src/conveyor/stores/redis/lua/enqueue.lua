-- ARGV: prefix, now, n, then per job (dependencies first):
--   id queue task payload priority max_attempts run_at rk future timeout policy parent
--   tags unique_key unique_expires idem_key idem_expires fingerprint task_version
--   ndeps dep...
-- Validates the whole batch before writing anything.
local now = ARGV[2]
local n = tonumber(ARGV[3])
local NF = 19
local jobs = {}
local pos = 4
for i = 1, n do
  local j = {}
  for f = 1, NF do
    j[f] = ARGV[pos + f - 1]
  end
  local nd = tonumber(ARGV[pos + NF])
  j.deps = {}
  for d = 1, nd do
    j.deps[d] = ARGV[pos + NF + d]
  end
  pos = pos + NF + 1 + nd
  jobs[i] = j
end

local batch = {}
for _, j in ipairs(jobs) do
  if batch[j[1]] or redis.call('EXISTS', jkey(j[1])) == 1 then
    return redis.error_reply('CONVEYOR_DUPLICATE_ID ' .. j[1])
  end
  batch[j[1]] = true
end

local planned = {}
local function state_of(id)
  if planned[id] then
    return planned[id].state
  end
  return redis.call('HGET', jkey(id), 'state')
end

local seen_u, seen_i = {}, {}
local nowf = tonumber(now)
for _, j in ipairs(jobs) do
  local id = j[1]
  for _, d in ipairs(j.deps) do
    if not batch[d] and redis.call('EXISTS', jkey(d)) == 0 then
      return redis.error_reply('CONVEYOR_UNKNOWN_DEPENDENCY ' .. d)
    end
  end
  local dup = nil
  local ik, fp, uk = j[16], j[18], j[14]
  if ik ~= '' then
    if seen_i[ik] then
      if seen_i[ik].fp ~= fp then
        return redis.error_reply('CONVEYOR_IDEMPOTENCY_CONFLICT ' .. seen_i[ik].id .. ' ' .. ik)
      end
      dup = seen_i[ik].id
    else
      local h = redis.call('HMGET', P .. ':idem:' .. ik, 'job', 'expires', 'fingerprint')
      if h[1] and h[2] and tonumber(h[2]) > nowf then
        if h[3] ~= fp then
          return redis.error_reply('CONVEYOR_IDEMPOTENCY_CONFLICT ' .. h[1] .. ' ' .. ik)
        end
        dup = h[1]
      end
    end
  end
  if not dup and uk ~= '' then
    if seen_u[uk] then
      dup = seen_u[uk]
    else
      local h = redis.call('HMGET', P .. ':unique:' .. uk, 'job', 'expires')
      if h[1] then
        local is_held
        if h[2] and h[2] ~= '' then
          is_held = tonumber(h[2]) > nowf
        else
          local st = redis.call('HGET', jkey(h[1]), 'state')
          is_held = st and not TERMINAL[st]
        end
        if is_held then
          dup = h[1]
        end
      end
    end
  end
  if dup then
    planned[id] = {state = state_of(dup) or 'pending', dup = dup}
  else
    local state = nil
    local open = false
    for _, d in ipairs(j.deps) do
      local s = state_of(d)
      if s == 'failed' or s == 'cancelled' then
        if j[11] == 'fail' then
          state = 'failed'
        else
          state = 'cancelled'
        end
        break
      end
      if s ~= 'completed' then
        open = true
      end
    end
    if not state then
      if open then
        state = 'blocked'
      elseif j[9] == '1' then
        state = 'scheduled'
      else
        state = 'pending'
      end
    end
    planned[id] = {state = state}
    if uk ~= '' then
      seen_u[uk] = id
    end
    if ik ~= '' then
      seen_i[ik] = {id = id, fp = fp}
    end
  end
end

local out = {}
for _, j in ipairs(jobs) do
  local id = j[1]
  local plan = planned[id]
  if plan.dup then
    table.insert(out, {plan.dup, plan.state, 1})
  else
    local deps, seen, open = {}, {}, {}
    local encoded = ''
    for _, d in ipairs(j.deps) do
      if planned[d] and planned[d].dup then
        d = planned[d].dup
      end
      if not seen[d] then
        seen[d] = true
        table.insert(deps, d)
        encoded = encoded .. #d .. ':' .. d
        if redis.call('HGET', jkey(d), 'state') ~= 'completed' then
          table.insert(open, d)
        end
      end
    end
    local jk = jkey(id)
    redis.call('HSET', jk, 'id', id, 'queue', j[2], 'task', j[3], 'payload', j[4],
      'priority', j[5], 'max_attempts', j[6], 'run_at', j[7], 'rk', j[8],
      'on_dependency_failure', j[11], 'tags', j[13], 'task_version', j[19],
      'depends_on', encoded, 'attempt', '0', 'rescue_count', '0', 'cancel_requested', '0',
      'created_at', now, 'blocked_by', '0')
    local optional = {timeout = j[10], parent_id = j[12], unique_key = j[14],
      idempotency_key = j[16]}
    for field, value in pairs(optional) do
      if value ~= '' then
        redis.call('HSET', jk, field, value)
      end
    end
    if plan.state == 'blocked' then
      redis.call('HSET', jk, 'blocked_by', #open)
    elseif plan.state == 'failed' or plan.state == 'cancelled' then
      redis.call('HSET', jk, 'failure_reason', 'dependency_failed', 'finished_at', now)
    end
    move(id, plan.state)
    redis.call('SADD', P .. ':queues', j[2])
    redis.call('SADD', P .. ':queue:' .. j[2], id)
    redis.call('ZADD', P .. ':created', now, id)
    for _, d in ipairs(open) do
      redis.call('RPUSH', P .. ':dependents:' .. d, id)
    end
    if j[14] ~= '' then
      redis.call('HSET', P .. ':unique:' .. j[14], 'job', id, 'expires', j[15])
      redis.call('SADD', P .. ':uniques', j[14])
    end
    if j[16] ~= '' then
      redis.call('HSET', P .. ':idem:' .. j[16], 'job', id, 'expires', j[17],
        'fingerprint', j[18])
      redis.call('SADD', P .. ':idems', j[16])
    end
    if plan.state == 'pending' then
      wake()
    end
    table.insert(out, {id, plan.state, 0})
  end
end
return out
