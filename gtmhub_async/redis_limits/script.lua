-- The shared rate limit (gtmhub_async.redis_limits, read by script.py): one script, three modes.
-- Every number comes from ARGV (gtmhub_async.adaptive.ADAPTIVE and the limit's
-- own settings); the rules are those of gtmhub_async.adaptive.AdaptiveRate.
-- All times are Redis server microseconds (TIME), stored with %.17g.
local key = KEYS[1]
local mode = ARGV[1]
local max_rate = tonumber(ARGV[2])
local span = tonumber(ARGV[3])
local period = tonumber(ARGV[4])
local floor = tonumber(ARGV[5])
local workers = tonumber(ARGV[6])
local ttl = tonumber(ARGV[7])
local last_seen = tonumber(ARGV[8])
local rejoin = tonumber(ARGV[9])
local delay = tonumber(ARGV[10])
local max_gate = tonumber(ARGV[11])
local beta = tonumber(ARGV[12])
local hold = tonumber(ARGV[13])
local band = tonumber(ARGV[14])
local doubling_periods = tonumber(ARGV[15])
local recovery_periods = tonumber(ARGV[16])
local probe_first = tonumber(ARGV[17])
local probe_max = tonumber(ARGV[18])
local wave_share = tonumber(ARGV[19])
local wave_min = tonumber(ARGV[20])
local backoff_first = tonumber(ARGV[21])
local backoff_max = tonumber(ARGV[22])
local status = tonumber(ARGV[23])
local slot = tonumber(ARGV[24])
local saturated = tonumber(ARGV[25])
local forfeit = tonumber(ARGV[26])

-- Slots granted are counted in a ring of buckets, BPP per period: the count of the
-- period before a throttled request's slot is what the server let through.
local BPP = 50
local NB = 64
local bw = period / BPP

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local f = redis.call('HMGET', key, 'tat', 'gate', 'rec', 'start', 'target', 'growth', 'epoch',
                     'probe', 'forget', 'every', 'ceiling', 'confirmed', 'lastdec', 'streak',
                     'backoff', 'u503')
local fresh = not f[1]
local tat = tonumber(f[1]) or 0
local gate = tonumber(f[2]) or 0
local rec = tonumber(f[3]) or 0
local start = tonumber(f[4]) or max_rate
local target = tonumber(f[5]) or max_rate
local growth = tonumber(f[6]) or 0
local epoch = tonumber(f[7]) or 0
local probe_after = tonumber(f[8]) or -1
local forget_after = tonumber(f[9]) or -1
local every = tonumber(f[10]) or probe_first
local ceiling = tonumber(f[11]) or -1
local confirmed = tonumber(f[12]) or 0
local lastdec = tonumber(f[13]) or 0
local streak = tonumber(f[14]) or 0
local backoff = tonumber(f[15]) or 0
local u503 = f[16] or ''
local dbl = math.log(2) / (doubling_periods * period)

local function num(x) return string.format('%.17g', x) end

local function rate(at)
  local x = at - epoch
  if x <= 0 then return math.min(max_rate, math.max(floor, start)) end
  local w = target
  local climb = growth * x
  if climb < math.log(target / start) then w = start * math.exp(climb) end
  if probe_after >= 0 and x > probe_after then
    local p = dbl * (x - probe_after)
    w = max_rate
    if p < math.log(max_rate / target) then w = target * math.exp(p) end
  end
  return math.min(max_rate, math.max(floor, w))
end

local function bucket_add(at, n)
  local idx = math.floor(at / bw)
  local j = idx % NB
  local seen = tonumber(redis.call('HGET', key, 'i' .. j))
  if seen == idx then
    redis.call('HINCRBY', key, 'c' .. j, n)
  elseif n > 0 then
    redis.call('HSET', key, 'i' .. j, idx, 'c' .. j, n)
  end
end

local function slots_before(at)
  local idx = math.floor(at / bw)
  local total = 0
  for i = idx - BPP, idx - 1 do
    local j = i % NB
    local v = redis.call('HMGET', key, 'i' .. j, 'c' .. j)
    if tonumber(v[1]) == i then total = total + (tonumber(v[2]) or 0) end
  end
  return total
end

local function expire()
  local horizon = math.max(tat, gate, rec, now)
  redis.call('PEXPIRE', key, math.ceil((horizon - now) / 1000) + ttl)
end

if mode == 'check' then
  return {math.max(0, gate - now), now}
end

if mode == 'acquire' then
  if forfeit > 0 then bucket_add(forfeit, -1) end
  if fresh and last_seen > 0 then
    -- An empty key right after a slot this worker was given: Redis lost its
    -- state (a restart). Start the new schedule a whole window after it.
    tat = math.max(tat, last_seen + span)
  end
  if rejoin > 0 then rec = math.max(rec, now + rejoin) end
  local begin = math.max(now, tat, gate)
  local interval = span / rate(begin)
  if begin < rec then interval = interval * workers end
  tat = begin + interval
  bucket_add(begin, 1)
  redis.call('HSET', key, 'tat', num(tat), 'rec', num(rec))
  expire()
  return {begin - now, begin, now}
end

local function known(at)
  return ceiling >= 0 and (forget_after < 0 or at - epoch < forget_after)
end

local function set_curve(s)
  local holding = confirmed == 1 and ceiling >= 0
  local tgt = max_rate
  if holding then tgt = ceiling end
  tgt = math.max(tgt, s)
  local climb = math.log(tgt / s)
  start = s
  target = tgt
  growth = math.max(dbl, climb / (recovery_periods * period))
  local reach = climb / growth
  if holding then
    probe_after = math.max(reach, every * period)
    forget_after = probe_after + math.log(max_rate / tgt) / dbl + span
  else
    probe_after = -1
    forget_after = reach + span
  end
end

local function decrease()
  local current = rate(now)
  local at = now
  if slot > 0 and slot <= now then at = slot end
  local seen = slots_before(at)
  local was_known = known(now)
  local level
  if seen == 0 then
    level = math.max(floor, current * beta)
  else
    level = math.max(floor, math.min(current, seen) * hold)
    if saturated == 0 then level = math.max(level, current * beta) end
    if was_known and math.abs(level - ceiling) <= band * ceiling then
      if confirmed == 1 and current > ceiling then
        every = math.min(2 * every, probe_max)
      elseif confirmed == 0 then
        every = probe_first
      end
      if current > ceiling then ceiling = math.max(ceiling, level)
      else ceiling = math.min(ceiling, level) end
      confirmed = 1
      level = ceiling
    else
      ceiling = level
      confirmed = 0
    end
  end
  if seen == 0 and not was_known then
    ceiling = -1
    confirmed = 0
  end
  set_curve(level)
  lastdec = now
end

if mode == 'throttle' then
  local was_open = now >= gate
  if was_open and delay < 0 then
    if now - gate >= math.max(period, backoff) then streak = 0 end
    backoff = math.min(backoff_first * 2 ^ streak, backoff_max)
    streak = streak + 1
  end
  local d
  if delay < 0 then d = backoff else d = math.min(delay, max_gate) end
  local signal = status == 429
  if status ~= 429 then
    -- 503s: a rate signal only in a wave.
    local kept = {}
    for v in string.gmatch(u503, '[^,]+') do
      if tonumber(v) > now - span then kept[#kept + 1] = v end
    end
    kept[#kept + 1] = num(now)
    u503 = table.concat(kept, ',')
    local n = #kept
    signal = n >= wave_min and n >= wave_share * (n + slots_before(now))
  end
  if signal and was_open and now - lastdec >= period then decrease() end
  gate = math.max(gate, now + d)
  epoch = math.max(epoch, gate)
  redis.call('HSET', key, 'tat', num(tat), 'gate', num(gate), 'rec', num(rec),
             'start', num(start), 'target', num(target), 'growth', num(growth),
             'epoch', num(epoch), 'probe', num(probe_after), 'forget', num(forget_after),
             'every', num(every), 'ceiling', num(ceiling), 'confirmed', confirmed,
             'lastdec', num(lastdec), 'streak', num(streak), 'backoff', num(backoff),
             'u503', u503)
  expire()
  return {gate - now, was_open and 1 or 0, math.floor(rate(gate) * 1000)}
end

return redis.error_reply('unknown mode ' .. tostring(mode))
