-- touch / set_ttl / persist. ARGV: 5 key, 6 'touch' | 'set' | 'persist',
-- 7 seconds (set). 0 done, 1 missing (or the map has no TTL).
local k, op = ARGV[5], ARGV[6]
if TTL == 0 then return 1 end
if not cur(k) then return 1 end
if op == 'touch' then
  stamp(k, false, nil)
elseif op == 'persist' then
  redis.call('ZREM', E, k)
else
  stamp(k, false, ARGV[7])
end
return 0
