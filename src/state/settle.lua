-- Settlement after the answer; the Lua twin of Memory::settle (memory.rs),
-- with the bucket math of bucket.rs. One clock for every replica: Redis TIME.
-- KEYS: the adjusted buckets, then the counters added to.
-- ARGV: number of adjusts; per adjust capacity, per_minute, delta; per add
-- amount (negative gives back a reservation: never below zero, and a
-- counter that is gone is not recreated), ttl_ms (applied only when the
-- counter has no expiry yet).
-- Reply: the counters' new totals, in order.
-- Bucket helpers, MINUTE_US and now: bucket.lua, prepended.
local na = tonumber(ARGV[1])

for i = 1, na do
  local key = KEYS[i]
  local capacity = tonumber(ARGV[3 * i - 1])
  local per_minute = tonumber(ARGV[3 * i])
  local delta = tonumber(ARGV[3 * i + 1])
  local level = read_level(key, capacity, per_minute)
  write_level(key, math.min(level - delta, capacity), capacity, per_minute)
end

local totals = {}
local base = 2 + 3 * na
for i = na + 1, #KEYS do
  local j = base + 2 * (i - na - 1)
  local amount = tonumber(ARGV[j])
  if amount < 0 and redis.call('EXISTS', KEYS[i]) == 0 then
    totals[#totals + 1] = 0
  else
    local total = redis.call('INCRBY', KEYS[i], ARGV[j])
    if total < 0 then
      redis.call('SET', KEYS[i], 0, 'KEEPTTL')
      total = 0
    end
    totals[#totals + 1] = total
    if redis.call('PTTL', KEYS[i]) == -1 then
      redis.call('PEXPIRE', KEYS[i], ARGV[j + 1])
    end
  end
end
return totals
