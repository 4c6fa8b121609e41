-- wrk script: sends pre-signed TOP calls read from a file written by
-- `loanwire bench sign --out FILE` (one call a line: the path with its query, a tab, the body),
-- cycling through them, each thread from its own offset. Usage:
--   wrk -t2 -c64 -d10s -s benchmarks/wrk-presigned.lua http://127.0.0.1:PORT -- FILE
local calls = {}
local next_call = 1

function init(args)
  local file = assert(io.open(args[1], "r"), "a file of signed calls")
  for line in file:lines() do
    local path, body = line:match("^([^\t]*)\t(.*)$")
    if path then calls[#calls + 1] = { path, body } end
  end
  file:close()
  next_call = (math.random(#calls) or 1)
end

function request()
  local c = calls[next_call]
  next_call = next_call % #calls + 1
  return wrk.format("POST", c[1],
    { ["Content-Type"] = "application/x-www-form-urlencoded;charset=utf-8" }, c[2])
end
