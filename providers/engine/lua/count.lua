-- Outcomes into the shared window (resilience.md §8 "Counters"), each applied atomically and
-- in order; a process sends the outcomes that arrived while its previous call was in flight.
-- KEYS[1] state hash
-- ARGV base, bucket_ms, buckets, reporter, ttl_ms, then per outcome: failure (0|1),
--      slow (0|1), consecutive (0|1)
-- Returns {now, then per outcome: calls, failures, slow, consecutive run, reporters with
-- failures, most failures of one reporter}: the pooled window just after that outcome.
local now = now_ms()
local base, bucket_ms, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local reporter, ttl = ARGV[4], tonumber(ARGV[5])
local epoch = redis.call('HGET', KEYS[1], 'epoch') or '0'
local idx = math.floor(now / bucket_ms)
local calls, fails, slows, run, bad = sum_window(base, epoch, idx, n)
local w = base .. ':w:' .. epoch .. ':' .. idx
local r = base .. ':r:' .. epoch .. ':' .. idx
local out = {fmt(now)}
for i = 6, #ARGV, 3 do
  local failure, slow = ARGV[i] == '1', ARGV[i + 1] == '1'
  if ARGV[i + 2] == '1' then
    if failure then run = run + 1 else run = 0 end
  end
  redis.call('HINCRBY', w, 'calls', 1)
  calls = calls + 1
  if failure then
    redis.call('HINCRBY', w, 'fail', 1)
    fails = fails + 1
  end
  if slow then
    redis.call('HINCRBY', w, 'slow', 1)
    slows = slows + 1
  end
  if failure or slow then
    redis.call('HINCRBY', r, reporter, 1)
    bad[reporter] = (bad[reporter] or 0) + 1
  end
  local reporters, most = quorum(bad)
  for _, v in ipairs({calls, fails, slows, run, reporters, most}) do out[#out + 1] = v end
end
redis.call('HSET', w, 'consec', run)
redis.call('PEXPIRE', w, ttl)
if redis.call('EXISTS', r) == 1 then redis.call('PEXPIRE', r, ttl) end
return out
