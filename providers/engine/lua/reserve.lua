-- Claim one half-open probe slot of generation gen, fleet-wide at most `limit` (the Faulty
-- PR #70 pattern: an atomic counter checked against N, with expiry probe_ttl). Each claim is
-- a member of a sorted set scored by its own expiry, so a hung probe frees its slot at
-- probe_ttl and a released one at once, without holding the others.
-- KEYS[1] reservations (base:p:gen), KEYS[2] bookkeeping (base:q:gen), KEYS[3] state hash
-- ARGV gen, limit, ttl_ms, keep_ms
-- Returns {token, now, live token, expiry, ...}; token 0: all slots taken; -1: the state is
-- no longer half-open in gen, and the state fields follow now instead of the reservations.
local now = now_ms()
local st = read_state(KEYS[3])
if st[1] ~= 'half_open' or tonumber(st[2] or 0) ~= tonumber(ARGV[1]) then
  return {-1, fmt(now), unpack(st)}
end
local live = live_probes(KEYS[1], now)
local token = 0
if #live / 2 < tonumber(ARGV[2]) then
  token = redis.call('HINCRBY', KEYS[2], 'seq', 1)
  local expiry = now + tonumber(ARGV[3])
  redis.call('ZADD', KEYS[1], expiry, token)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  live[#live + 1] = tostring(token)
  live[#live + 1] = fmt(expiry)
end
return {token, fmt(now), unpack(live)}
