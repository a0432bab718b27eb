-- Forget one shared cooldown (a model pulled, a key replaced).
-- KEYS[1] cooldowns hash, KEYS[2] state hash. ARGV field, channel, breaker key, origin.
-- Returns {now, cver, field, value, ...}: the cooldowns still in force.
local now = now_ms()
local cver = tonumber(redis.call('HGET', KEYS[2], 'cver') or 0)
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  cver = redis.call('HINCRBY', KEYS[2], 'cver', 1)
  redis.call('PUBLISH', ARGV[2], cjson.encode({t = 'c', k = ARGV[3], o = ARGV[4], v = cver,
                                               c = redis.call('HGETALL', KEYS[1]), d = ARGV[1]}))
end
return {fmt(now), cver, unpack(redis.call('HGETALL', KEYS[1]))}
