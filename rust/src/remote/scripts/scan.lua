-- One HSCAN step for each and cursors. ARGV: 5 the scan cursor, 6 COUNT.
-- {next cursor, key, key UTF-8 flag, value, ...} (expired entries skipped).
local r = redis.call('HSCAN', D, ARGV[5], 'COUNT', ARGV[6])
local out = {r[1]}
local kv = r[2]
local flags = {}
if KB and #kv > 0 then
  local ks = {}
  for i = 1, #kv, 2 do ks[#ks + 1] = kv[i] end
  flags = redis.call('HMGET', U, unpack(ks))
end
for i = 1, #kv, 2 do
  local k = kv[i]
  if not is_expired(k) then
    out[#out + 1] = k
    out[#out + 1] = flags[(i + 1) / 2] and '1' or '0'
    out[#out + 1] = kv[i + 1]
  end
end
return out
