-- Reads of a TTL map. ARGV from 5: keys. Their values (nil: missing).
local out = {}
for i = 5, #ARGV do out[#out + 1] = peek(ARGV[i]) or false end
return out
