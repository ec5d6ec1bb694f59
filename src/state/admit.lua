-- All-or-nothing admission; the Lua twin of Memory::admit (memory.rs), with
-- the bucket math of bucket.rs. One clock for every replica: Redis TIME.
-- KEYS: the takes' buckets, then the caps' counters.
-- ARGV: number of takes; per take capacity, per_minute, amount; per cap limit.
-- Reply: {0} granted; {1, i, wait_us} take i (1-based) refused, wait_us -1
-- when it never fits; {2, i} cap i reached. Nothing is written unless granted.
-- Bucket helpers, MINUTE_US and now: bucket.lua, prepended.
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
    level = read_level(key, capacity, per_minute)
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
    write_level(key, after[key], capacity, per_minute)
  end
end
return {0}
