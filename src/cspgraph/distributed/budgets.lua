-- The Graph limiter's algorithm (cspgraph/graph/limits.py, GraphLimiter) over state kept in Redis,
-- so that every worker of a fleet books against one set of budgets. One call is one atomic step
-- (Redis runs a script alone): a reservation, an answer, a 429, a tenant size or a budget read.
-- It mirrors limits.py line for line, in the same order of float operations, and
-- tests/scale/test_redis_limiter.py checks that both give the same waits and budgets for the same
-- random histories. Change the two together.
--
-- KEYS[1] the app's hash, KEYS[2] the tenant's hash.
-- ARGV: op, now ('' = Redis's own clock), ttl seconds, then the configuration (CONFIG below),
-- then the op's own arguments.
local APP, TEN = KEYS[1], KEYS[2]
local op = ARGV[1]
local now = tonumber(ARGV[2])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1e6
end
local ttl = tonumber(ARGV[3])
local c = 4
local function arg()
  local v = ARGV[c]
  c = c + 1
  return v
end
local function num() return tonumber(arg()) end
-- Configuration (budgets already multiplied by scale), in the order RedisLimiter sends it.
local U = num()
local G_AMT, G_WIN = num(), num()
local IA_AMT, IA_WIN = num(), num()
local IAW_AMT, IAW_WIN = num(), num()
local IT = {S = num(), M = num(), L = num()}
local IT_WIN = num()
local ITW_AMT, ITW_WIN = num(), num()
local IN_AMT, IN_WIN = num(), num()
local INW_AMT, INW_WIN = num(), num()
local INITIAL = arg()
local SLOW_DOWN_AT, TENANT_SHARE_OF_APP, RELEARN_BELOW, EPSILON = num(), num(), num(), num()

local function load(key)
  local flat = redis.call('HGETALL', key)
  local t = {}
  for i = 1, #flat, 2 do
    local v = flat[i + 1]
    t[flat[i]] = tonumber(v) or v
  end
  return t
end

local A = load(APP)
local T = load(TEN)

-- _Bucket --------------------------------------------------------------------------------------
local function b_resize(t, p, amount, window)
  local steady = amount * U
  t[p .. 'rate'] = steady / window
  t[p .. 'cap'] = amount - steady
end

local function b_new(t, p, amount, window)
  b_resize(t, p, amount, window)
  t[p .. 'level'] = t[p .. 'cap']
  t[p .. 'stamp'] = now
end

local function b_take(t, p, units)
  local stamp = t[p .. 'stamp']
  if now > stamp then
    local level = t[p .. 'level'] + (now - stamp) * t[p .. 'rate']
    if level < t[p .. 'cap'] then t[p .. 'level'] = level else t[p .. 'level'] = t[p .. 'cap'] end
    t[p .. 'stamp'] = now
    stamp = now
  end
  t[p .. 'level'] = t[p .. 'level'] - units
  local wait = stamp - now
  if t[p .. 'level'] < -EPSILON then wait = wait - t[p .. 'level'] / t[p .. 'rate'] end
  return wait
end

local function b_refund(t, p, units)
  local level = t[p .. 'level'] + units
  if t[p .. 'cap'] < level then level = t[p .. 'cap'] end
  t[p .. 'level'] = level
end

local function b_pause(t, p, untl)
  b_take(t, p, 0.0)
  if 0.0 < t[p .. 'level'] then t[p .. 'level'] = 0.0 end
  if t[p .. 'stamp'] < untl then t[p .. 'stamp'] = untl end
end

-- _Adaptive (its bucket's fields share its prefix) ---------------------------------------------
local function a_new(t, p, start, ceiling, window, floor)
  t[p .. 'budget'] = start
  t[p .. 'ceiling'] = ceiling
  if floor == nil then t[p .. 'floor'] = start * 0.1 else t[p .. 'floor'] = floor end
  t[p .. 'window'] = window
  b_new(t, p, start, window)
  t[p .. 'pressed'] = 0
  t[p .. 'seen'] = 0
  t[p .. 'clean'] = now
  t[p .. 'lastcut'] = -window
end

local function a_set_budget(t, p, budget)
  local b = budget
  if b < t[p .. 'floor'] then b = t[p .. 'floor'] end
  if t[p .. 'ceiling'] < b then b = t[p .. 'ceiling'] end
  t[p .. 'budget'] = b
  b_resize(t, p, b, t[p .. 'window'])
end

local function a_cut(t, p, factor)
  t[p .. 'clean'] = now
  if now - t[p .. 'lastcut'] >= t[p .. 'window'] then
    t[p .. 'lastcut'] = now
    a_set_budget(t, p, t[p .. 'budget'] * factor)
  end
end

local function a_learn(t, p, measured)
  t[p .. 'clean'] = now
  if measured >= 1.0 and now - t[p .. 'lastcut'] >= t[p .. 'window'] then
    t[p .. 'lastcut'] = now
    local b = t[p .. 'budget']
    if measured < b then b = measured end
    a_set_budget(t, p, b)
    b_take(t, p, 0.0)
    if t[p .. 'cap'] < t[p .. 'level'] then t[p .. 'level'] = t[p .. 'cap'] end
  end
end

local function a_maybe_raise(t, p, needs_units)
  if t[p .. 'pressed'] == 0 or now - t[p .. 'clean'] < t[p .. 'window']
      or t[p .. 'budget'] >= t[p .. 'ceiling'] then
    return
  end
  if needs_units and t[p .. 'seen'] == 0 then return end
  a_set_budget(t, p, t[p .. 'budget'] * 1.1)
  t[p .. 'pressed'] = 0
  t[p .. 'seen'] = 0
  t[p .. 'clean'] = now
end

-- _Usage ---------------------------------------------------------------------------------------
local function u_new(t, p, window)
  t[p .. 'window'] = window
  t[p .. 'index'] = -2
  t[p .. 'cur'] = 0.0
  t[p .. 'prev'] = 0.0
end

local function u_roll(t, p)
  local position = now / t[p .. 'window']
  local index = math.floor(position)
  if index ~= t[p .. 'index'] then
    if index == t[p .. 'index'] + 1 then t[p .. 'prev'] = t[p .. 'cur'] else t[p .. 'prev'] = 0.0 end
    t[p .. 'cur'] = 0.0
    t[p .. 'index'] = index
  end
  return position - index
end

local function u_add(t, p, amount)
  u_roll(t, p)
  t[p .. 'cur'] = t[p .. 'cur'] + amount
end

local function u_total(t, p)
  local fraction = u_roll(t, p)
  return t[p .. 'prev'] * (1.0 - fraction) + t[p .. 'cur']
end

-- State, created on first use as GraphLimiter creates it ---------------------------------------
-- The app: g_ global requests, i_ identity RU, w_ identity writes, rq_ / ru_ what Graph admitted.
local function app()
  if A.g_budget == nil then
    a_new(A, 'g_', G_AMT, G_AMT, G_WIN, 1.0)
    a_new(A, 'i_', IA_AMT, IA_AMT, IA_WIN, 1.0)
    b_new(A, 'w_', IAW_AMT, IAW_WIN)
    u_new(A, 'rq_', G_WIN)
    u_new(A, 'ru_', IA_WIN)
  end
end

-- The tenant: x (it exists), size, id_ identity, iw_ identity writes, in_ Intune, nw_ Intune
-- writes, rc_ its own recent requests.
local function identity_budget(size)
  return IT[size]
end

local function tenant_state()
  if T.x == nil then T.x = 1 end
end

local function new_identity()
  a_new(T, 'id_', identity_budget(T.size or INITIAL), identity_budget('L'), IT_WIN)
end

local function new_intune()
  a_new(T, 'in_', IN_AMT, IN_AMT, IN_WIN)
end

local IDENTITY, INTUNE = 'identity', 'intune'

local function max3(a, b, d)
  local m = a
  if b > m then m = b end
  if d ~= nil and d > m then m = d end
  return m
end

local result = nil

if op == 'init' then
  app()
elseif op == 'reserve' then
  local family, units, writes = arg(), num(), num()
  app()
  local wait = b_take(A, 'g_', 1)
  if wait > 0.0 then A.g_pressed = 1 end
  if family == IDENTITY then
    tenant_state()
    if T.id_budget == nil then new_identity() end
    local w = b_take(T, 'id_', units)
    if w > 0.0 then T.id_pressed = 1 end
    local a = b_take(A, 'i_', units)
    if a > 0.0 then A.i_pressed = 1 end
    wait = max3(wait, w, a)
    if writes ~= 0 then
      if T.iw_rate == nil then b_new(T, 'iw_', ITW_AMT, ITW_WIN) end
      wait = max3(wait, b_take(T, 'iw_', 1), b_take(A, 'w_', 1))
    end
  elseif family == INTUNE then
    tenant_state()
    if T.in_budget == nil then new_intune() end
    local w = b_take(T, 'in_', units)
    if w > 0.0 then T.in_pressed = 1 end
    wait = max3(wait, w)
    if writes ~= 0 then
      if T.nw_rate == nil then b_new(T, 'nw_', INW_AMT, INW_WIN) end
      wait = max3(wait, b_take(T, 'nw_', 1))
    end
  end
  result = string.format('%.17g', wait)
elseif op == 'response' then
  local family, units, writes = arg(), num(), num()
  local resource_units, limit_percentage = tonumber(arg()), tonumber(arg())
  local identity = family == IDENTITY
  app()
  u_add(A, 'rq_', 1.0)
  if identity then
    local measured = units
    if resource_units ~= nil then measured = resource_units end
    u_add(A, 'ru_', measured)
    if resource_units ~= nil then A.i_seen = 1 end
  end
  local exists = T.x ~= nil
  local recent = 0.0
  if exists then
    if T.rc_window == nil then u_new(T, 'rc_', G_WIN) end
    u_add(T, 'rc_', 1.0)
    recent = u_total(T, 'rc_')
  end
  local pressure = limit_percentage ~= nil and limit_percentage >= SLOW_DOWN_AT
  if pressure and recent < TENANT_SHARE_OF_APP * u_total(A, 'rq_') then
    -- _app_pressure: only the budget fullest against what is assumed learns (or holds).
    local p, used = 'g_', u_total(A, 'rq_')
    if identity then
      local used_i = u_total(A, 'ru_')
      if used_i / A.i_budget > used / A.g_budget then p, used = 'i_', used_i end
    end
    local estimate = used / limit_percentage
    if estimate < RELEARN_BELOW * A[p .. 'budget'] then
      a_learn(A, p, estimate)
    else
      A[p .. 'clean'] = now
    end
  else
    if not pressure then
      a_maybe_raise(A, 'g_', false)
      if identity then a_maybe_raise(A, 'i_', true) end
    end
    if exists and (family == IDENTITY or family == INTUNE) then
      local p = 'in_'
      if identity then p = 'id_' end
      if T[p .. 'budget'] ~= nil then
        if resource_units ~= nil then
          T[p .. 'seen'] = 1
          b_refund(T, p, units - resource_units)
        end
        if pressure then
          local factor = 0.7
          if limit_percentage < 1.0 then factor = 0.9 end
          a_cut(T, p, factor)
        else
          a_maybe_raise(T, p, identity)
        end
      end
    end
  end
elseif op == 'throttled' then
  local family, units, writes = arg(), num(), num()
  local delay, app_wide = num(), arg() == '1'
  local untl = now + delay
  if app_wide then
    app()
    a_learn(A, 'g_', u_total(A, 'rq_'))
    b_pause(A, 'g_', untl)
    if family == IDENTITY then
      a_learn(A, 'i_', u_total(A, 'ru_'))
      b_pause(A, 'i_', untl)
    end
  elseif family == IDENTITY or family == INTUNE then
    tenant_state()
    local p = 'in_'
    if family == IDENTITY then
      p = 'id_'
      if T.id_budget == nil then new_identity() end
    elseif T.in_budget == nil then
      new_intune()
    end
    a_cut(T, p, 0.5)
    b_pause(T, p, untl)
  end
elseif op == 'size' then
  local size = arg()
  T.size = size
  if T.x ~= nil and T.id_budget ~= nil then a_set_budget(T, 'id_', identity_budget(size)) end
elseif op == 'budget' then
  local family = arg()
  local value
  if family == IDENTITY and T.x ~= nil and T.id_budget ~= nil then
    value = T.id_budget
  elseif family ~= IDENTITY and T.x ~= nil and T.in_budget ~= nil then
    value = T.in_budget
  elseif family == IDENTITY then
    value = identity_budget(T.size or INITIAL)
  else
    value = IN_AMT
  end
  return string.format('%.17g', value)
else
  return redis.error_reply('unknown limiter operation ' .. tostring(op))
end

local function save(key, t)
  local flat = {}
  for k, v in pairs(t) do
    flat[#flat + 1] = k
    if type(v) == 'number' then flat[#flat + 1] = string.format('%.17g', v) else flat[#flat + 1] = v end
  end
  if #flat > 0 then
    redis.call('HSET', key, unpack(flat))
    redis.call('EXPIRE', key, ttl)
  end
end

save(APP, A)
save(TEN, T)
return result
