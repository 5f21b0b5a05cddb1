-- ARGV: prefix, now, [id, token, why]*
-- Quarantine leased jobs that Python could not decode (fenced by the lease token): failed,
-- reason corrupt, `why` recorded, the claim's attempt and start undone (the job never ran).
-- Returns the ids quarantined.
local now = ARGV[2]
NOW_HINT = now
local done = {}
for i = 3, #ARGV, 3 do
  local id, token, why = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if held(id, token) then
    -- The claim that leased it was not a run: undo what it recorded.
    local jk = jkey(id)
    local attempt = tonumber(redis.call('HGET', jk, 'attempt'))
    if attempt and attempt > 0 and attempt == math.floor(attempt) then
      redis.call('HSET', jk, 'attempt', attempt - 1)
    end
    redis.call('HDEL', jk, 'worker_id', 'started_at', 'heartbeat_at')
    quarantine(id, why, now, nil)
    table.insert(done, id)
  end
end
return done
