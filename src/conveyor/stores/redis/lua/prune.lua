-- ARGV: prefix, now, limit, cutoff completed, cutoff failed, cutoff cancelled ('' = keep),
-- sweep ('1' or '0'), then record namespaces keyed by job id (a job's records there go
-- with it)
-- Deletes up to `limit` terminal jobs finished at or before their cutoff, oldest first,
-- with the key holds they own; with sweep, then orphaned key holds and up to `limit`
-- expired records (all counted as orphans). Without sweep the work is O(limit).
-- A job a chain step that is not terminal yet reads (its parent) is skipped, not deleted.
-- Returns {jobs deleted, orphans deleted}.
local now, limit = ARGV[2], tonumber(ARGV[3])
local nowf = tonumber(now)
local states = {'completed', 'failed', 'cancelled'}
local deleted = 0
local orphans = 0
-- Delete one job with the key holds and records it owns.
local function prune_one(id)
  local keys = redis.call('HMGET', jkey(id), 'unique_key', 'idempotency_key')
  for k, kind in ipairs({'unique', 'idem'}) do
    local name = keys[k]
    if name and name ~= '' then
      local hold = P .. ':' .. kind .. ':' .. name
      if redis.call('HGET', hold, 'job') == id then
        redis.call('DEL', hold)
        redis.call('SREM', P .. ':' .. kind .. 's', name)
        orphans = orphans + 1
      end
    end
  end
  for n = 8, #ARGV do
    orphans = orphans + redis.call('HDEL', P .. ':records:' .. ARGV[n], id)
    redis.call('ZREM', P .. ':record_expiry', ARGV[n] .. '\0' .. id)
  end
  drop_job(id)
  redis.call('DEL', P .. ':dependents:' .. id)
  deleted = deleted + 1
end

for i, state in ipairs(states) do
  local cutoff = ARGV[3 + i]
  -- A parent a chain step still needs stays in place; the next page starts past those.
  local kept = 0
  while cutoff ~= '' and deleted < limit do
    local want = limit - deleted
    local ids = redis.call('ZRANGEBYSCORE', P .. ':finished:' .. state, '-inf', cutoff,
      'LIMIT', kept, want)
    for _, id in ipairs(ids) do
      local st = redis.call('HGET', jkey(id), 'state')
      if st == state then
        if needed_by_step(id) then
          kept = kept + 1
        else
          prune_one(id)
        end
      elseif st then
        -- A stale entry (the job is in another state now): drop the entry, never the job.
        redis.call('ZREM', P .. ':finished:' .. state, id)
        redis.call('HINCRBY', P .. ':repairs', 'index', 1)
      else
        quarantine(id, 'the job hash is missing', now, nil)
        -- never see this entry again in this loop, whatever quarantine left behind
        redis.call('ZREM', P .. ':finished:' .. state, id)
      end
    end
    if #ids < want then
      break
    end
  end
end
if ARGV[7] ~= '1' then
  return {deleted, orphans}
end
for _, kind in ipairs({'unique', 'idem'}) do
  local set = P .. ':' .. kind .. 's'
  for _, name in ipairs(redis.call('SMEMBERS', set)) do
    local key = P .. ':' .. kind .. ':' .. name
    local h = redis.call('HMGET', key, 'job', 'expires')
    local gone = (not h[1]) or redis.call('EXISTS', jkey(h[1])) == 0
    if not gone and h[2] and h[2] ~= '' and tonumber(h[2]) <= nowf then
      gone = true
    end
    if gone then
      redis.call('DEL', key)
      redis.call('SREM', set, name)
      orphans = orphans + 1
    end
  end
end
local expired = redis.call('ZRANGEBYSCORE', P .. ':record_expiry', '-inf', now,
  'LIMIT', 0, limit)
for _, member in ipairs(expired) do
  local at = string.find(member, '\0', 1, true)
  redis.call('HDEL', P .. ':records:' .. string.sub(member, 1, at - 1), string.sub(member, at + 1))
  redis.call('ZREM', P .. ':record_expiry', member)
  orphans = orphans + 1
end
return {deleted, orphans}
