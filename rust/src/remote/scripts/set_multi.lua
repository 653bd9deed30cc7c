-- ARGV from 5: key, value, key UTF-8 flag, ... The number stored: pairs
-- are taken in order, a new key only while there is room.
local n = 0
if TTL > 0 then
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
end
-- no expiry: one HMGET and one HSET per chunk of 1000 pairs
local len = redis.call('HLEN', D)
local known = {}
for c = 5, #ARGV, 3000 do
  local last = math.min(c + 2999, #ARGV)
  local ks = {}
  for i = c, last, 3 do ks[#ks + 1] = ARGV[i] end
  local have = redis.call('HMGET', D, unpack(ks))
  local args, flagged = {}, {}
  for j = 1, #ks do
    local k, i = ks[j], c + (j - 1) * 3
    local ok = have[j] or known[k]
    if not ok and len < MAX then
      len = len + 1
      known[k] = true
      ok = true
      if KB and ARGV[i + 2] == '1' then flagged[#flagged + 1] = k; flagged[#flagged + 1] = '1' end
    end
    if ok then
      args[#args + 1] = k
      args[#args + 1] = ARGV[i + 1]
      n = n + 1
    end
  end
  if #args > 0 then redis.call('HSET', D, unpack(args)) end
  if #flagged > 0 then redis.call('HSET', U, unpack(flagged)) end
end
return n
