-- An API key's spend hash for a period, created from the spend the database holds, unless a
-- worker created it first. A new epoch tells the spend counted while Redis was away (pushed
-- later against the epoch it was counted on) whether it is already in the total.
-- KEYS[1] the key's spend hash; ARGV spend (nano-units), ttl (s), epoch
-- Returns {1} when created, {0} when it existed.
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
redis.call('HSET', KEYS[1], 'spend', ARGV[1], 'epoch', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {1}
