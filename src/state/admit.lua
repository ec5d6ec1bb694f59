-- All-or-nothing admission; the Lua twin of Memory::admit (memory.rs), with
-- the bucket math of bucket.rs. One clock for every replica: Redis TIME.
-- KEYS: the takes' buckets, then the caps' counters.
-- ARGV: number of takes; per take capacity, per_minute, amount; per cap limit.
-- Reply: {0} granted; {1, i, wait_us} take i (1-based) refused, wait_us -1
-- when it never fits; {2, i} cap i reached. Nothing is written unless granted.
-- Numbers written are formatted here (exact), not by Redis' conversion.
local MINUTE_US = 60000000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nt = tonumber(ARGV[1])

for i = nt + 1, #KEYS do
  local value = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if value >= tonumber(ARGV[1 + 3 * nt + (i - nt)]) then
    return {2, i - nt}
  end
end

local after = {}
local worst, worst_wait = 0, 0
for i = 1, nt do
  local key = KEYS[i]
  local capacity = tonumber(ARGV[3 * i - 1])
  local per_minute = tonumber(ARGV[3 * i])
  local amount = tonumber(ARGV[3 * i + 1])
  local level = after[key]
  if level == nil then
    local h = redis.call('HMGET', key, 'l', 't')
    if h[1] then
      local elapsed = math.max(0, now - tonumber(h[2]))
      level = math.min(tonumber(h[1]) + elapsed * per_minute / MINUTE_US, capacity)
    else
      level = capacity
    end
  end
  if level < amount then
    local wait = -1
    if amount <= capacity and per_minute > 0 then
      wait = math.ceil((amount - level) * MINUTE_US / per_minute)
    end
    if worst == 0 or (worst_wait ~= -1 and (wait == -1 or wait > worst_wait)) then
      worst, worst_wait = i, wait
    end
  end
  after[key] = level - amount
end
if worst > 0 then
  return {1, worst, worst_wait}
end

local written = {}
for i = 1, nt do
  local key = KEYS[i]
  if not written[key] then
    written[key] = true
    local capacity = tonumber(ARGV[3 * i - 1])
    local per_minute = tonumber(ARGV[3 * i])
    local level = after[key]
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
end
return {0}
