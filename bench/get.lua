-- wrk script: plain GET of the URL's path (keep-alive, close and the large-response scenario).
dofile((os.getenv("BENCH_DIR") or "bench") .. "/report.lua")
