-- Start or extend a shared cooldown; the longer one wins whatever its kind (§1 (ii)).
-- KEYS[1] cooldowns hash, KEYS[2] state hash
-- ARGV field, kind, for ms ("" = until reset), reason, channel, breaker key, origin, version
-- (of the credential: one set for another version no longer holds, so it is replaced)
-- Returns {1|0, now, cver, field, value, ...}: started or not, and the cooldowns now in force.
local now = now_ms()
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local started = 1
if cur then
  local c = cjson.decode(cur)
  if (c.v or '') == (ARGV[8] or '') and (c.u == '' or (ARGV[3] ~= '' and tonumber(c.u) >= now + tonumber(ARGV[3]))) then
    started = 0
  end
end
if started == 1 then
  local u = ''
  if ARGV[3] ~= '' then u = fmt(now + tonumber(ARGV[3])) end
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({k = ARGV[2], u = u, r = ARGV[4], v = ARGV[8] or ''}))
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local c = cjson.decode(all[i + 1])
  if c.u ~= '' and tonumber(c.u) <= now then redis.call('HDEL', KEYS[1], all[i]) end
end
local cver = tonumber(redis.call('HGET', KEYS[2], 'cver') or 0)
if started == 1 then
  cver = redis.call('HINCRBY', KEYS[2], 'cver', 1)
  all = redis.call('HGETALL', KEYS[1])
  redis.call('PUBLISH', ARGV[5], cjson.encode({t = 'c', k = ARGV[6], o = ARGV[7], v = cver, c = all}))
end
return {started, fmt(now), cver, unpack(redis.call('HGETALL', KEYS[1]))}
