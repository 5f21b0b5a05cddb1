-- ARGV: prefix, cutoff. Forget nodes whose heartbeat is before cutoff; return how many.
local ids = redis.call('ZRANGEBYSCORE', P .. ':node_heartbeats', '-inf', '(' .. ARGV[2])
for _, id in ipairs(ids) do
  redis.call('HDEL', P .. ':nodes', id)
  redis.call('ZREM', P .. ':node_heartbeats', id)
end
return #ids
