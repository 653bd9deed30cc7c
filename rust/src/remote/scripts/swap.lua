-- ARGV: 5 key, 6 value, 7 key UTF-8 flag. {0, old}, {1} fresh insert, {2} full.
local k = ARGV[5]
local old = cur(k)
if not old and not room() then return {2} end
redis.call('HSET', D, k, ARGV[6])
if not old then kflag(k, ARGV[7]) end
stamp(k, not old, nil)
if old then return {0, old} end
return {1}
