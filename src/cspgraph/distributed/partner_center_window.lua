-- One partner tenant's Partner Center window (cspgraph/partner/pacing.py, PartnerCenterPacer)
-- kept in Redis, so that every worker of a fleet books its customer requests in one sliding-window
-- log. One call is one atomic step (Redis runs a script alone): two workers never book one slot.
-- Mirrors PartnerCenterPacer.reserve and .throttled; change the two together.
--
-- KEYS[1] the log: a sorted set of booked send times (score) under unique members, the last
--         `limit` bookings only; KEYS[2] the pause: the time before which nothing is sent.
-- ARGV: op ('reserve' | 'throttled'), now ('' = Redis's own clock), limit, span (the window plus
-- its margin, seconds), then for 'reserve' the booking's member, for 'throttled' the delay.
local LOG, PAUSE = KEYS[1], KEYS[2]
local op = ARGV[1]
local now = tonumber(ARGV[2])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1e6
end
local limit, span = tonumber(ARGV[3]), tonumber(ARGV[4])

-- Keys live as long as what they hold matters, in whole milliseconds (at least one).
local function keep(key, seconds)
  redis.call('PEXPIRE', key, math.max(1, math.ceil(seconds * 1000)))
end

if op == 'reserve' then
  local start = now
  local paused = tonumber(redis.call('GET', PAUSE))
  if paused ~= nil and paused > start then start = paused end
  if redis.call('ZCARD', LOG) >= limit then
    -- The limit-th most recent booking must have left the window first.
    local oldest = redis.call('ZRANGE', LOG, -limit, -limit, 'WITHSCORES')
    local free = tonumber(oldest[2]) + span
    if free > start then start = free end
  end
  redis.call('ZADD', LOG, start, ARGV[5])
  redis.call('ZREMRANGEBYRANK', LOG, 0, -(limit + 1))
  keep(LOG, start - now + span)  -- gone once its latest booking has left the window
  return string.format('%.17g', start - now)
elseif op == 'throttled' then
  local untl = now + tonumber(ARGV[5])
  local paused = tonumber(redis.call('GET', PAUSE))
  if paused == nil or untl > paused then
    redis.call('SET', PAUSE, string.format('%.17g', untl))
    keep(PAUSE, untl - now)
  end
  return nil
end
return redis.error_reply('unknown Partner Center window operation ' .. tostring(op))
