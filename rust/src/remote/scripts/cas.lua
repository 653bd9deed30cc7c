-- ARGV: 5 key, 6 expected (bytes without the flag, or a number), 7 desired.
-- 0 replaced, 1 not.
local k = ARGV[5]
local old = cur(k)
if not old or payload(old) ~= ARGV[6] then return 1 end
redis.call('HSET', D, k, ARGV[7])
stamp(k, false, nil)
return 0
