-- Give a half-open probe slot back (a cancelled probe, a caller error, a finished probe).
-- KEYS[1] reservations (base:p:gen). ARGV token. Returns {now, live token, expiry, ...}.
local now = now_ms()
redis.call('ZREM', KEYS[1], ARGV[1])
return {fmt(now), unpack(live_probes(KEYS[1], now))}
