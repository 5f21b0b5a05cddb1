-- Prologue of the scripts that act on one held job (ARGV: prefix, now, id, token, ...),
-- prepended after common.lua: refuse with CONVEYOR_LEASE_LOST unless the job is
-- processing under `token`, before anything is written.
local now, id, token = ARGV[2], ARGV[3], ARGV[4]
NOW_HINT = now
if not held(id, token) then
  return redis.error_reply('CONVEYOR_LEASE_LOST ' .. id)
end
local jk = jkey(id)
