-- put / add / update and their _ttl forms. ARGV: 5 key, 6 value, 7 key
-- UTF-8 flag, 8 own TTL ('' = not a TTL write), 9 'put' | 'add' | 'update'.
-- 0 stored, 1 not (add: present; update: absent), 2 full.
local k, mode = ARGV[5], ARGV[9]
local old = cur(k)
if mode == 'add' and old then return 1 end
if mode == 'update' and not old then return 1 end
if not old and not room() then return 2 end
redis.call('HSET', D, k, ARGV[6])
if not old then kflag(k, ARGV[7]) end
stamp(k, not old, ARGV[8])
return 0
