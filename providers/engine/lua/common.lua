-- Prepended to every script of the Redis state store (providers/engine/redis_store.py).
-- Times are Redis TIME in milliseconds (fractional), the one clock every process shares.
-- Keys of one breaker key share the prefix `base` = "<prefix>{<breaker key>}" (one hash slot):
--   base:s            state hash: state gen open_until k reason since mode cause ver epoch cver
--                     origin (the reporter whose write it was)
--   base:w:<ep>:<i>   counters of 5 s bucket i: calls fail slow consec
--   base:r:<ep>:<i>   reporters of bucket i that saw a failure or a slow call: id -> count
--   base:p:<gen>      half-open reservations of generation gen: token scored by its expiry
--   base:q:<gen>      probe bookkeeping of generation gen: seq ok fail
--   base:c            cooldowns: field "-" or "=<credential>", then "\31<scope>" for a model
--                     family -> {k = kind, u = until or "", r = reason, v = credential version}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end

local function fmt(x)
  return string.format('%.3f', x)
end

local STATE_FIELDS = {'state', 'gen', 'open_until', 'k', 'reason', 'since', 'mode', 'cause',
                      'ver', 'epoch', 'cver', 'origin'}

local function read_state(key)
  return redis.call('HMGET', key, unpack(STATE_FIELDS))
end

-- Sums of the n buckets ending at idx, the consecutive run as of the newest one, and the
-- failures (or slow calls) each reporter saw in them.
local function sum_window(base, epoch, idx, n)
  local calls, fails, slows, run = 0, 0, 0, nil
  local bad = {}
  for i = idx, idx - n + 1, -1 do
    local v = redis.call('HMGET', base .. ':w:' .. epoch .. ':' .. i, 'calls', 'fail', 'slow', 'consec')
    if v[1] then
      calls = calls + tonumber(v[1])
      fails = fails + tonumber(v[2] or 0)
      slows = slows + tonumber(v[3] or 0)
      if run == nil then run = tonumber(v[4] or 0) end
    end
    local r = redis.call('HGETALL', base .. ':r:' .. epoch .. ':' .. i)
    for j = 1, #r, 2 do
      bad[r[j]] = (bad[r[j]] or 0) + tonumber(r[j + 1])
    end
  end
  return calls, fails, slows, run or 0, bad
end

local function quorum(bad)
  local reporters, most = 0, 0
  for _, c in pairs(bad) do
    reporters = reporters + 1
    if c > most then most = c end
  end
  return reporters, most
end

local function live_probes(key, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  return redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
end
