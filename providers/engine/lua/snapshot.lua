-- Read what a process caches about some breaker keys, in one round trip (§8 "Caching").
-- KEYS state hashes. ARGV per key: base, bucket_ms ("" = do not count), buckets.
-- Returns {now, then per key {state fields}, {cooldown field, value, ...},
--          {live probe expiries of the current half-open generation}, {window counts}}.
local now = now_ms()
local out = {fmt(now)}
for i, key in ipairs(KEYS) do
  local base = ARGV[3 * i - 2]
  local st = read_state(key)
  local probes = {}
  if st[1] == 'half_open' then
    local live = live_probes(base .. ':p:' .. (st[2] or '0'), now)
    for j = 2, #live, 2 do probes[#probes + 1] = live[j] end
  end
  local counts = {}
  if ARGV[3 * i - 1] ~= '' then
    local bucket_ms, n = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
    local calls, fails, slows, run, bad = sum_window(base, st[10] or '0', math.floor(now / bucket_ms), n)
    local reporters, most = quorum(bad)
    counts = {calls, fails, slows, run, reporters, most}
  end
  out[#out + 1] = st
  out[#out + 1] = redis.call('HGETALL', base .. ':c')
  out[#out + 1] = probes
  out[#out + 1] = counts
end
return out
