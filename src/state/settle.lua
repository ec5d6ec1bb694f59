-- Settlement after the answer; the Lua twin of Memory::settle (memory.rs),
-- with the bucket math of bucket.rs. One clock for every replica: Redis TIME.
-- KEYS: the adjusted buckets, then the counters added to.
-- ARGV: number of adjusts; per adjust capacity, per_minute, delta; per add
-- amount, ttl_ms (applied only when the counter has no expiry yet).
-- Numbers written are formatted here (exact), not by Redis' conversion.
-- Reply: the counters' new totals, in order.
local MINUTE_US = 60000000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local na = tonumber(ARGV[1])

for i = 1, na do
  local key = KEYS[i]
  local capacity = tonumber(ARGV[3 * i - 1])
  local per_minute = tonumber(ARGV[3 * i])
  local delta = tonumber(ARGV[3 * i + 1])
  local level = capacity
  local h = redis.call('HMGET', key, 'l', 't')
  if h[1] then
    local elapsed = math.max(0, now - tonumber(h[2]))
    level = math.min(tonumber(h[1]) + elapsed * per_minute / MINUTE_US, capacity)
  end
  level = math.min(level - delta, capacity)
  local ttl = 1000
  if level < capacity then
    if per_minute > 0 then
      ttl = math.min(math.ceil((capacity - level) * 60000 / per_minute) + 1000, 2592000000)
    else
      ttl = 86400000
    end
  end
  redis.call('HSET', key, 'l', string.format('%.17g', level), 't', string.format('%d', now))
  redis.call('PEXPIRE', key, string.format('%d', ttl))
end

local totals = {}
local base = 2 + 3 * na
for i = na + 1, #KEYS do
  local j = base + 2 * (i - na - 1)
  totals[#totals + 1] = redis.call('INCRBY', KEYS[i], ARGV[j])
  if redis.call('PTTL', KEYS[i]) == -1 then
    redis.call('PEXPIRE', KEYS[i], ARGV[j + 1])
  end
end
return totals
