-- ARGV: prefix, now, id, token (after leased.lua)
set_cancelled(id, now)
return 1
