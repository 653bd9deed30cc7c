-- ARGV: 5 key, 6 default, 7 key UTF-8 flag. {0, value} or {2} (full).
local k = ARGV[5]
local old = cur(k)
if old then
  stamp(k, false, nil)
  return {0, old}
end
if not room() then return {2} end
redis.call('HSET', D, k, ARGV[6])
kflag(k, ARGV[7])
stamp(k, true, nil)
return {0, ARGV[6]}
