-- ARGV from 5: keys. The number removed.
local n = 0
for i = 5, #ARGV do
  if cur(ARGV[i]) then
    drop(ARGV[i])
    n = n + 1
  end
end
return n
