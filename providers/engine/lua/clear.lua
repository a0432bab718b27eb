-- Forget the shared window: a new epoch names new bucket keys; the old ones expire.
-- KEYS[1] state hash. Returns {epoch, now}.
local now = now_ms()
return {redis.call('HINCRBY', KEYS[1], 'epoch', 1), fmt(now)}
