-- The whole map's consistency: 'ok', or the first problem found.
local m = redis.call('HMGET', M, 'magic', 'variant')
if m[1] ~= 'Data::HashMap::Shared' then return 'the metadata key is missing or not ours' end
local n = redis.call('HLEN', D)
if n > MAX then return 'holds ' .. n .. ' entries, more than max_entries ' .. MAX end
local all = redis.call('HGETALL', D)
for i = 1, #all, 2 do
  local k, v = all[i], all[i + 1]
  if not KB and not string.match(k, '^%-?%d+$') then return 'key is not an integer: ' .. k end
  if VB then
    local f = v:sub(1, 1)
    if f ~= '0' and f ~= '1' then return 'value of ' .. k .. ' has no flag byte' end
  elseif not string.match(v, '^%-?%d+$') then
    return 'value of ' .. k .. ' is not an integer'
  end
end
for _, k in ipairs(redis.call('ZRANGE', E, 0, -1)) do
  if redis.call('HEXISTS', D, k) == 0 then return 'expiry of a missing key ' .. k end
end
if KB then
  for _, k in ipairs(redis.call('HKEYS', U)) do
    if redis.call('HEXISTS', D, k) == 0 then return 'UTF-8 flag of a missing key ' .. k end
  end
end
return 'ok'
