-- pop / shift / drain: a server map has no recency order, so any entries.
-- ARGV: 5 how many. {key, key UTF-8 flag, value, ...}.
local want = tonumber(ARGV[5])
local out = {}
local got = 0
while got < want do
  local ks = redis.call('HRANDFIELD', D, math.min(want - got, 1000))
  if #ks == 0 then break end
  for _, k in ipairs(ks) do
    local v = cur(k)
    if v then
      out[#out + 1] = k
      out[#out + 1] = kflag_of(k)
      out[#out + 1] = v
      drop(k)
      got = got + 1
    end
  end
end
return out
