-- An API key's admission (providers/keys.py): its budget, then its requests and tokens in the
-- sliding minute (as the provider limits' script counts them); the request is counted in the
-- same atomic step that allows it, so no two workers can both take the last one.
-- KEYS[1] the key's spend hash for the period (fields spend, epoch, a:<budget>:<percent>)
-- KEYS[2] the base of the key's minute hashes (<base>:<minute>, fields r and t)
-- ARGV rpm, tpm, budget (nano-units); -1: no such limit
-- Returns {-1}: the spend hash must be seeded first; {0, 'budget', spend};
-- {0, 'requests' | 'tokens', previous minute, current minute, share of the minute gone};
-- {1, spend, epoch} (both '' when the key has no budget).
local rpm, tpm, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local spend, epoch = '', ''
if budget >= 0 then
  local row = redis.call('HMGET', KEYS[1], 'spend', 'epoch')
  if not row[1] then return {-1} end
  spend, epoch = row[1], row[2] or ''
  if tonumber(spend) >= budget then return {0, 'budget', spend} end
end
if rpm >= 0 or tpm >= 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local minute = math.floor(now / 60)
  local into = (now % 60) / 60
  local cur = KEYS[2] .. ':' .. minute
  local p = redis.call('HMGET', KEYS[2] .. ':' .. (minute - 1), 'r', 't')
  local c = redis.call('HMGET', cur, 'r', 't')
  local pr, pt = tonumber(p[1] or '0'), tonumber(p[2] or '0')
  local cr, ct = tonumber(c[1] or '0'), tonumber(c[2] or '0')
  if rpm >= 0 and pr * (1 - into) + cr + 1 > rpm then
    return {0, 'requests', tostring(pr), tostring(cr), tostring(into)}
  end
  if tpm >= 0 and pt * (1 - into) + ct >= tpm then
    return {0, 'tokens', tostring(pt), tostring(ct), tostring(into)}
  end
  redis.call('HINCRBY', cur, 'r', 1)
  redis.call('EXPIRE', cur, 180)
end
return {1, spend, epoch}
