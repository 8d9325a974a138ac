-- wrk script: plain GET of the URL's path, reporting bytes/s too (for the large-response scenario).
dofile((os.getenv("BENCH_DIR") or "bench") .. "/report.lua")
