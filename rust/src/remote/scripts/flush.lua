-- flush_expired(_partial). ARGV: 5 the most entries to remove.
-- {removed, 1 if no expired entry is left}.
local n = purge(tonumber(ARGV[5]))
local left = 0
if TTL > 0 then left = redis.call('ZCOUNT', E, '-inf', now()) end
if left == 0 then return {n, 1} end
return {n, 0}
