-- wrk script: HTTP/1.1 pipelining. Each wrk "request" writes DEPTH requests back to back
-- (env PIPELINE_DEPTH, default 16) for PIPELINE_PATH (default "/"); wrk counts each response.
-- Latency is per batch (first byte written to last response read).
local depth = tonumber(os.getenv("PIPELINE_DEPTH") or "16")
local path = os.getenv("PIPELINE_PATH") or "/"
init = function(args)
  local r = {}
  for i = 1, depth do r[i] = wrk.format("GET", path) end
  batch = table.concat(r)
end
request = function() return batch end
dofile((os.getenv("BENCH_DIR") or "bench") .. "/report.lua")
