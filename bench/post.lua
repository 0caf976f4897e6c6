-- POST a form body with an Authorization header:
--   wrk … -s bench/post.lua URL -- PATH AUTHORIZATION BODY
local path, authorization, body
function init(args)
  path, authorization, body = args[1], args[2], args[3]
end
function request()
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = authorization,
  }, body)
end
