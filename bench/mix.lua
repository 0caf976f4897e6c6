-- wrk script: the mixed workload of the performance issue, per thread and in
-- order: of every 100 requests, 1 is a password login, 9 are refreshes
-- (chained rotation, each refresh token presented once) and 90 are
-- GET /users/me.
--
-- args (after --): access=FILE refresh=FILE threads=T users=N prefix=P
--   password=PW [logins=L]
--   logins: logins per 100 requests (default 1); with 0 those requests are
--   `me` too, for a run whose logins come from another wrk (see suite.sh);
--   access:  access tokens, one per line, used round-robin by `me`;
--   refresh: refresh tokens, one per line; thread k takes lines k+1, k+1+T…
--
-- wrk does not say which request a response answers, so the body does:
-- every 200 that carries a refresh_token (a refresh or a login) puts it
-- back in the thread's pool, the way ../shared/bench's refresh.lua chains
-- them. Any status but 200 is counted as unexpected (an error).
local shared = os.getenv("SHARED_BENCH") or "../shared/bench"
local lib = dofile(shared .. "/load/lib.lua")

local me_reqs, me_n, me_idx
local pool, head, tail
local users, prefix, password, logins
local sent = 0

function setup(thread) lib.setup(thread) end

function init(args)
  local a = lib.parse_args(args)
  local T = tonumber(a.threads or "1")
  local id = thread_id or 0
  me_reqs = {}
  for i, t in ipairs(lib.read_lines(a.access)) do
    me_reqs[i] = wrk.format("GET", "/users/me",
      { ["Authorization"] = "Bearer " .. t, ["Accept"] = "application/json" })
  end
  me_n = #me_reqs
  assert(me_n > 0, "no access tokens in " .. tostring(a.access))
  me_idx = id * math.floor(me_n / T) % me_n
  pool, head, tail = {}, 1, 0
  for i, t in ipairs(lib.read_lines(a.refresh)) do
    if (i - 1) % T == id then
      tail = tail + 1
      pool[tail] = t
    end
  end
  users = tonumber(a.users or "50")
  prefix = a.prefix or "bench"
  password = a.password
  logins = tonumber(a.logins or "1")
  lib.init_counters()
end

local function me()
  me_idx = me_idx % me_n + 1
  return me_reqs[me_idx]
end

local function refresh()
  if head > tail then
    starved = starved + 1
    return me()
  end
  local token = pool[head]
  pool[head] = nil
  head = head + 1
  return wrk.format("POST", "/auth/refresh",
    { ["Content-Type"] = "application/json", ["Accept"] = "application/json" },
    '{"refresh_token":"' .. token .. '"}')
end

local function login()
  local user = string.format("%s%03d", prefix, math.random(users))
  return wrk.format("POST", "/oauth/token",
    { ["Content-Type"] = "application/x-www-form-urlencoded", ["Accept"] = "application/json" },
    "grant_type=password&username=" .. lib.urlencode(user)
      .. "&password=" .. lib.urlencode(password))
end

function request()
  if not lib.ready() then return wrk.format("GET", "/") end
  sent = sent + 1
  local slot = sent % 100
  if slot < logins then return login() end
  if slot <= 9 then return refresh() end
  return me()
end

function response(status, headers, body)
  lib.count(status, 200)
  if status == 200 then
    local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if token then
      tail = tail + 1
      pool[tail] = token
    end
  end
end

function done(summary, latency, requests) lib.done(summary, latency) end
