-- remove / take / cas_take. ARGV: 5 key, 6 '1' if 7 is the expected value.
-- The removed value, or nil.
local k = ARGV[5]
local old = cur(k)
if not old then return false end
if ARGV[6] == '1' and payload(old) ~= ARGV[7] then return false end
drop(k)
return old
