-- Create the map's metadata, or read it. ARGV: 5 variant, 6 max_entries,
-- 7 ttl, 8 format version. {magic, format, variant, max_entries, ttl}, or
-- {'not-ours'} when the meta key holds something else.
local t = redis.call('TYPE', M)['ok']
if t == 'none' then
  redis.call('HSET', M, 'magic', 'Data::HashMap::Shared', 'format', ARGV[8],
    'variant', ARGV[5], 'max_entries', ARGV[6], 'ttl', ARGV[7], 'expired', '0')
elseif t ~= 'hash' then
  return {'not-ours'}
end
local m = redis.call('HMGET', M, 'magic', 'format', 'variant', 'max_entries', 'ttl')
if m[1] ~= 'Data::HashMap::Shared' then return {'not-ours'} end
return m
