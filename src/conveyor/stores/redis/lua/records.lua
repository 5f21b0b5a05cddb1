-- Records (see conveyor.stores.redis.records for the layout). One compare-and-set step.
-- ARGV: prefix, op, namespace, key, ...
--   op 'put': now, value, expect ('' = create), expires ('' = never)
--     returns the new version, or false on conflict
--   op 'delete': expect ('' = any version); returns 1 if deleted, else 0
local op, ns, key = ARGV[2], ARGV[3], ARGV[4]
local hk = P .. ':records:' .. ns
local member = ns .. '\0' .. key
local cur = redis.call('HGET', hk, key)
local version, expires = 0, ''
if cur then
  local a = string.find(cur, ':', 1, true)
  local b = string.find(cur, ':', a + 1, true)
  version = tonumber(string.sub(cur, 1, a - 1))
  expires = string.sub(cur, a + 1, b - 1)
end
if op == 'put' then
  local now, value, expect, new_expires = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
  local live = cur and (expires == '' or tonumber(expires) > tonumber(now))
  if expect == '' then
    if live then
      return false
    end
  elseif not live or version ~= tonumber(expect) then
    return false
  end
  local next_version = string.format('%d', version + 1)
  redis.call('HSET', hk, key, next_version .. ':' .. new_expires .. ':' .. value)
  if new_expires == '' then
    redis.call('ZREM', P .. ':record_expiry', member)
  else
    redis.call('ZADD', P .. ':record_expiry', new_expires, member)
  end
  return tonumber(next_version)
elseif op == 'delete' then
  local expect = ARGV[5]
  if not cur or (expect ~= '' and version ~= tonumber(expect)) then
    return 0
  end
  redis.call('HDEL', hk, key)
  redis.call('ZREM', P .. ':record_expiry', member)
  return 1
end
return redis.error_reply('unknown records op ' .. tostring(op))
