-- Shared head of every script of the Data::HashMap::Shared server backend.
-- KEYS: 1 meta (hash), 2 data (hash: key -> value), 3 expiry (sorted set:
-- key -> deadline in ms), 4 UTF-8 flags of string keys (hash: key -> 1).
-- ARGV: 1 default TTL (s, 0 = none), 2 max_entries, 3 '1' if keys are
-- strings, 4 '1' if values are strings (their first byte is the UTF-8
-- flag); the operation's own arguments follow from ARGV[5].
-- Integers travel and are stored as decimal strings: Lua numbers are
-- doubles, so int64 values are compared as strings and added by HINCRBY.
local M, D, E, U = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local TTL = tonumber(ARGV[1])
local MAX = tonumber(ARGV[2])
local KB = ARGV[3] == '1'
local VB = ARGV[4] == '1'
local NOW
local function now()
  if not NOW then
    local t = redis.call('TIME')
    NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return NOW
end
local function is_expired(k)
  if TTL == 0 then return false end
  local d = redis.call('ZSCORE', E, k)
  return d ~= false and d ~= nil and tonumber(d) <= now()
end
local function drop(k)
  redis.call('HDEL', D, k)
  redis.call('ZREM', E, k)
  if KB then redis.call('HDEL', U, k) end
end
-- the live value of k, or nil; an expired entry met on the way is removed
local function cur(k)
  local v = redis.call('HGET', D, k)
  if v and is_expired(k) then
    drop(k)
    redis.call('HINCRBY', M, 'expired', 1)
    return nil
  end
  return v or nil
end
-- the live value of k, or nil, without writing (read scripts)
local function peek(k)
  local v = redis.call('HGET', D, k)
  if v and is_expired(k) then return nil end
  return v or nil
end
-- remove up to `limit` expired entries; returns how many
local function purge(limit)
  if TTL == 0 then return 0 end
  local n = 0
  while n < limit do
    local ks = redis.call('ZRANGEBYSCORE', E, '-inf', now(), 'LIMIT', 0, math.min(1000, limit - n))
    if #ks == 0 then break end
    redis.call('HDEL', D, unpack(ks))
    redis.call('ZREM', E, unpack(ks))
    if KB then redis.call('HDEL', U, unpack(ks)) end
    n = n + #ks
  end
  if n > 0 then redis.call('HINCRBY', M, 'expired', n) end
  return n
end
-- room for one more entry (expired entries are removed to make it)
local function room()
  if redis.call('HLEN', D) < MAX then return true end
  if purge(MAX) > 0 then return redis.call('HLEN', D) < MAX end
  return false
end
-- the lifetime after a write of k: `own` seconds (a TTL write; 0 =
-- permanent), else the default for a new entry, a refresh for an entry
-- that has one; a permanent entry stays permanent
local function stamp(k, fresh, own)
  if own ~= nil and own ~= '' then
    own = tonumber(own)
    if own == 0 then redis.call('ZREM', E, k) else redis.call('ZADD', E, now() + own * 1000, k) end
  elseif TTL > 0 then
    if fresh or redis.call('ZSCORE', E, k) then redis.call('ZADD', E, now() + TTL * 1000, k) end
  end
end
-- the UTF-8 flag of a key just inserted (a removed key's flag is removed
-- with it, so a new key has none to clear)
local function kflag(k, f)
  if KB and f == '1' then redis.call('HSET', U, k, '1') end
end
local function kflag_of(k)
  if KB and redis.call('HEXISTS', U, k) == 1 then return '1' end
  return '0'
end
-- a < b for canonical decimal int64 strings
local function lt(a, b)
  local na, nb = a:sub(1, 1) == '-', b:sub(1, 1) == '-'
  if na ~= nb then return na end
  if #a ~= #b then if na then return #a > #b else return #a < #b end end
  if na then return a > b else return a < b end
end
-- the value compared by cas: the bytes without the flag byte, or the number
local function payload(v)
  if VB then return v:sub(2) end
  return v
end
-- seconds left for k (0 = permanent)
local function remaining(k)
  if TTL == 0 then return 0 end
  local d = redis.call('ZSCORE', E, k)
  if not d then return 0 end
  local ms = tonumber(d) - now()
  local s = math.ceil(ms / 1000)
  if s < 1 then s = 1 end
  return s
end
