-- Compare-and-set of the shared breaker state on (state, generation, mode) (§3 "Events", §8).
-- KEYS[1] state hash
-- ARGV expected state, expected gen, expected mode, new state, gen delta (0|1),
--      open for ms ("" = no deadline), k, reason, since offset ms, mode, cause, channel,
--      breaker key, origin
-- Deadlines are set here, on Redis TIME. Returns {1|0, now, state fields...}: the state after
-- the write, or the current one when the comparison failed. A write is published on channel.
local now = now_ms()
local cur = read_state(KEYS[1])
if (cur[1] or 'closed') ~= ARGV[1] or tonumber(cur[2] or 0) ~= tonumber(ARGV[2])
    or (cur[7] or 'normal') ~= ARGV[3] then
  return {0, fmt(now), unpack(cur)}
end
local open_until = ''
if ARGV[6] ~= '' then open_until = fmt(now + tonumber(ARGV[6])) end
redis.call('HSET', KEYS[1],
  'state', ARGV[4], 'gen', tonumber(cur[2] or 0) + tonumber(ARGV[5]), 'open_until', open_until,
  'k', ARGV[7], 'reason', ARGV[8], 'since', fmt(now + tonumber(ARGV[9])), 'mode', ARGV[10],
  'cause', ARGV[11], 'ver', tonumber(cur[9] or 0) + 1, 'origin', ARGV[14])
local st = read_state(KEYS[1])
redis.call('PUBLISH', ARGV[12], cjson.encode({t = 's', k = ARGV[13], o = ARGV[14], s = st}))
return {1, fmt(now), unpack(st)}
