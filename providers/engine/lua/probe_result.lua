-- Count one probe result of generation gen, fleet-wide.
-- KEYS[1] bookkeeping (base:q:gen). ARGV field (ok|fail), keep_ms. Returns {ok, fail}.
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'ok', 'fail')
return {tonumber(v[1] or 0), tonumber(v[2] or 0)}
