-- Token-bucket helpers shared by admit.lua and settle.lua: prepended to
-- each (remote.rs), the Lua twin of bucket.rs. One clock for every
-- replica: Redis TIME. Buckets are hashes {l = level, t = microseconds}.
-- Numbers written are formatted here (exact), not by Redis' conversion.
local MINUTE_US = 60000000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- The bucket's level now: refilled since it was written, full when absent.
local function read_level(key, capacity, per_minute)
  local h = redis.call('HMGET', key, 'l', 't')
  if not h[1] then
    return capacity
  end
  local elapsed = math.max(0, now - tonumber(h[2]))
  return math.min(tonumber(h[1]) + elapsed * per_minute / MINUTE_US, capacity)
end

-- Writes the bucket's level; it expires once it would be full again.
local function write_level(key, level, capacity, per_minute)
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

