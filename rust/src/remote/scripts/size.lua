-- The number of live entries.
local n = redis.call('HLEN', D)
if TTL > 0 then n = n - redis.call('ZCOUNT', E, '-inf', now()) end
return n
