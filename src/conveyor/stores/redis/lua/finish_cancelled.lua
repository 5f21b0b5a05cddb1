-- ARGV: prefix, now, id, token
local id, token = ARGV[3], ARGV[4]
if not held(id, token) then
  return redis.error_reply('CONVEYOR_LEASE_LOST ' .. id)
end
set_cancelled(id, ARGV[2])
return 1
