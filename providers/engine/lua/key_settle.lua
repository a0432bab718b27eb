-- A finished request's usage on an API key: its tokens into the minute's count, its cost into
-- the period's spend, and the budget thresholds that spend has just passed. A threshold's flag
-- is set in the same atomic step, so each is told once per period and budget, by one worker.
-- Each worker sends the total it has counted on this hash (its field w:<worker>), not an
-- increment: only what the hash lacks is added, so a call that timed out but was applied, then
-- sent again, is not counted twice.
-- KEYS[1] the key's spend hash for the period, KEYS[2] the base of its minute hashes
-- ARGV tokens, the worker's total (nano-units), budget (-1: none), the epoch expected ('' any),
--      the worker's id, then the thresholds in percent
-- Returns {-1}: seed the spend hash first; {-2}: the hash is not of the expected epoch (it was
-- rebuilt from the database meanwhile); {1, spend, epoch, crossed thresholds...}.
local tokens, budget = tonumber(ARGV[1]), tonumber(ARGV[3])
local spend, epoch = '', ''
local crossed = {}
if ARGV[2] ~= '0' or budget >= 0 then
  local field = 'w:' .. ARGV[5]
  local row = redis.call('HMGET', KEYS[1], 'spend', 'epoch', field)
  if not row[1] then return {-1} end
  epoch = row[2] or ''
  if ARGV[4] ~= '' and epoch ~= ARGV[4] then return {-2} end
  local before = tonumber(row[1])
  local total, sent = tonumber(ARGV[2]), tonumber(row[3] or '0')
  if total > sent then
    redis.call('HSET', KEYS[1], field, ARGV[2])
    redis.call('HINCRBY', KEYS[1], 'spend', string.format('%.0f', total - sent))
  end
  spend = redis.call('HGET', KEYS[1], 'spend')
  local after = tonumber(spend)
  if budget >= 0 then
    for i = 6, #ARGV do
      local mark = budget * tonumber(ARGV[i]) / 100
      if before < mark and after >= mark
          and redis.call('HSETNX', KEYS[1], 'a:' .. ARGV[3] .. ':' .. ARGV[i], 1) == 1 then
        table.insert(crossed, ARGV[i])
      end
    end
  end
end
if tokens > 0 then
  local t = redis.call('TIME')
  local cur = KEYS[2] .. ':' .. math.floor((tonumber(t[1]) + tonumber(t[2]) / 1000000) / 60)
  redis.call('HINCRBY', cur, 't', ARGV[1])
  redis.call('EXPIRE', cur, 180)
end
return {1, spend, epoch, unpack(crossed)}
