-- incr_by / max / min. ARGV: 5 key, 6 delta or bound, 7 key UTF-8 flag,
-- 8 'incr' | 'max' | 'min', 9 and 10 the value range ('' = int64: HINCRBY,
-- whose own overflow check is the range check).
-- {0, new value as a decimal string}, {2} full, {3} out of range.
local k, d, op = ARGV[5], ARGV[6], ARGV[8]
local old = cur(k)
if not old and not room() then return {2} end
local new
if op == 'incr' then
  if ARGV[9] == '' then
    local ok, err = pcall(redis.call, 'HINCRBY', D, k, d)
    if not ok then
      local msg = type(err) == 'table' and err.err or tostring(err)
      if string.find(msg, 'overflow', 1, true) then return {3} end
      return redis.error_reply(msg)
    end
    new = redis.call('HGET', D, k)
  else
    local n = tonumber(old or '0') + tonumber(d)
    if n < tonumber(ARGV[9]) or n > tonumber(ARGV[10]) then return {3} end
    new = string.format('%d', n)
    redis.call('HSET', D, k, new)
  end
else
  if not old then
    new = d
  elseif op == 'max' then
    if lt(old, d) then new = d else new = old end
  else
    if lt(d, old) then new = d else new = old end
  end
  if new ~= old then redis.call('HSET', D, k, new) end
end
if not old then kflag(k, ARGV[7]) end
stamp(k, not old, nil)
return {0, new}
