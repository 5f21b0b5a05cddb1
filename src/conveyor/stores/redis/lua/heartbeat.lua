-- ARGV: prefix, now, expires, id, token, id, token, ...
-- Returns one status per lease: 0 lost, 1 renewed, 2 renewed and cancel requested.
local now, expires = ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if held(id, token) then
    local jk = jkey(id)
    redis.call('HSET', jk, 'lease_expires_at', expires, 'heartbeat_at', now)
    redis.call('ZADD', P .. ':processing', 'XX', expires, id)
    if redis.call('HGET', jk, 'cancel_requested') == '1' then
      table.insert(out, 2)
    else
      table.insert(out, 1)
    end
  else
    table.insert(out, 0)
  end
end
return out
