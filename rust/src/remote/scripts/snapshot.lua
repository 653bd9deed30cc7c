-- keys / values / items / to_hash: every live entry, atomically.
-- {key, key UTF-8 flag, value, ...}.
local all = redis.call('HGETALL', D)
local dead, flags, out = {}, {}, {}
if TTL > 0 then
  for _, k in ipairs(redis.call('ZRANGEBYSCORE', E, '-inf', now())) do dead[k] = true end
end
if KB then
  for _, k in ipairs(redis.call('HKEYS', U)) do flags[k] = true end
end
for i = 1, #all, 2 do
  local k = all[i]
  if not dead[k] then
    out[#out + 1] = k
    out[#out + 1] = flags[k] and '1' or '0'
    out[#out + 1] = all[i + 1]
  end
end
return out
