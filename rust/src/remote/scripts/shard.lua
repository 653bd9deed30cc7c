-- Record (or read) which shard of how many this map is. ARGV: 5 'i/n'.
redis.call('HSETNX', M, 'shard', ARGV[5])
return redis.call('HGET', M, 'shard')
