-- ARGV from 5: key, value, key UTF-8 flag, ... The number stored.
local n = 0
for i = 5, #ARGV, 3 do
  local k = ARGV[i]
  local old = cur(k)
  if old or room() then
    redis.call('HSET', D, k, ARGV[i + 1])
    if not old then kflag(k, ARGV[i + 2]) end
    stamp(k, not old, nil)
    n = n + 1
  end
end
return n
