-- All-or-nothing admission; the Lua twin of Memory::admit (memory.rs), with
-- the bucket math of bucket.rs. One clock for every replica: Redis TIME.
-- KEYS: the takes' buckets, then the caps' counters.
-- ARGV: number of takes; per take capacity, per_minute, amount; per cap
-- limit, amount (reserved when granted), ttl_ms (for a counter it creates).
-- Reply: {0, v...} granted; {1, i, wait_us, v...} take i (1-based) refused,
-- wait_us -1 when it never fits; {2, i, v...} cap i reached. v...: every
-- cap's counter after the call. Nothing is written unless granted.
-- Bucket helpers, MINUTE_US and now: bucket.lua, prepended.
local nt = tonumber(ARGV[1])
local nc = #KEYS - nt
local function cap_arg(i, j)
  return ARGV[1 + 3 * nt + 3 * (i - 1) + j]
end

local values = {}
for i = 1, nc do
  values[i] = tonumber(redis.call('GET', KEYS[nt + i]) or '0') or 0
end
local function reply(head)
  for i = 1, nc do
    head[#head + 1] = values[i]
  end
  return head
end
for i = 1, nc do
  if values[i] >= tonumber(cap_arg(i, 1)) then
    return reply({2, i})
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
  return reply({1, worst, worst_wait})
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
for i = 1, nc do
  local key = KEYS[nt + i]
  if tonumber(cap_arg(i, 2)) > 0 then
    values[i] = redis.call('INCRBY', key, cap_arg(i, 2))
    if redis.call('PTTL', key) == -1 then
      redis.call('PEXPIRE', key, cap_arg(i, 3))
    end
  end
end
return reply({0})
