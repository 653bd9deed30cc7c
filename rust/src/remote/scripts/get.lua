-- Read of a TTL map. ARGV: 5 key, 6 '1' to add the seconds left.
-- The value (or {value, seconds}), or nil when missing or expired.
local v = peek(ARGV[5])
if not v then return false end
if ARGV[6] == '1' then return {v, remaining(ARGV[5])} end
return v
