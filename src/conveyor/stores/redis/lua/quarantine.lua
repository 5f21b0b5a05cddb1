-- ARGV: prefix, now, [id, token, why]*
-- Quarantine leased jobs that Python could not decode (fenced by the lease token): failed,
-- reason corrupt, `why` recorded. Returns the ids quarantined.
local now = ARGV[2]
NOW_HINT = now
local done = {}
for i = 3, #ARGV, 3 do
  local id, token, why = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if held(id, token) then
    quarantine(id, why, now, nil)
    table.insert(done, id)
  end
end
return done
