-- Forget every shared cooldown of one breaker key (an operator's reset).
-- KEYS[1] cooldowns hash, KEYS[2] state hash. ARGV channel, breaker key, origin.
-- Returns {now, cver}.
local now = now_ms()
redis.call('DEL', KEYS[1])
local cver = redis.call('HINCRBY', KEYS[2], 'cver', 1)
redis.call('PUBLISH', ARGV[1], cjson.encode({t = 'c', k = ARGV[2], o = ARGV[3], v = cver, c = {}, x = 1}))
return {fmt(now), cver}
