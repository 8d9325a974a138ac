-- wrk script: POST a body of POST_BYTES (default 1 MiB) to POST_PATH (default "/") on every request.
local n = tonumber(os.getenv("POST_BYTES") or "1048576")
wrk.method = "POST"
wrk.path = os.getenv("POST_PATH") or "/"
wrk.body = string.rep("x", n)
wrk.headers["Content-Type"] = "application/octet-stream"
dofile((os.getenv("BENCH_DIR") or "bench") .. "/report.lua")
