-- POST /auth/password-reset naming one account: `wrk … -s bench/reset.lua URL -- NAME`.
-- NAME "unknown" names a different account that does not exist on every
-- request; anything else names that (existing) account every time.
local name
function init(args)
  name = args[1] or "unknown"
end
local n = 0
function request()
  n = n + 1
  local who = name
  if name == "unknown" then
    who = string.format("nobody_%d_%d", math.random(1, 1e9), n)
  end
  return wrk.format("POST", "/auth/password-reset", {["Content-Type"] = "application/json"},
    string.format('{"username":"%s"}', who))
end
