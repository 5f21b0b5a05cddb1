-- ARGV: prefix, now, limit. Promote due scheduled/retrying jobs (run_at <= now).
-- Returns {promoted, earliest run_at still waiting or false}.
local now, limit = ARGV[2], tonumber(ARGV[3])
NOW_HINT = ARGV[2]
local promoted = 0
if limit > 0 then
  local due = redis.call('ZRANGEBYSCORE', P .. ':due', '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    local st = redis.call('HGET', jkey(id), 'state')
    if st == 'scheduled' or st == 'retrying' then
      if move(id, 'pending') == 'pending' then
        promoted = promoted + 1
      end
    elseif not st then
      quarantine(id, 'the job hash is missing', now, nil)
    else
      -- An entry whose job is no longer waiting (its state moved on): drop it, never run it.
      redis.call('ZREM', P .. ':due', id)
      redis.call('HINCRBY', P .. ':repairs', 'index', 1)
    end
  end
end
if promoted > 0 then
  wake()
end
local first = redis.call('ZRANGE', P .. ':due', 0, 0)
local next_due = false
if first[1] then
  next_due = redis.call('HGET', jkey(first[1]), 'run_at')
end
return {promoted, next_due}
