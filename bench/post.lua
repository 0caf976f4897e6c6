-- POST a form body with an Authorization header:
--   wrk … -s bench/post.lua URL -- PATH AUTHORIZATION BODY
-- BODY `@FILE` cycles through FILE's lines, one body each (each wrk thread
-- starts at its own line).
local path, authorization
local bodies, next_body = {}, 1
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  path, authorization = args[1], args[2]
  local body = args[3]
  if body:sub(1, 1) == "@" then
    for line in io.lines(body:sub(2)) do
      bodies[#bodies + 1] = line
    end
    next_body = (tonumber(wrk.thread:get("id")) or 0) * 17 % #bodies + 1
  else
    bodies[1] = body
  end
end
function request()
  local body = bodies[next_body]
  next_body = next_body % #bodies + 1
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = authorization,
  }, body)
end
