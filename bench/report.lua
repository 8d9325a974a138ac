-- wrk `done` hook shared by every scenario: one machine-readable RESULT line that scenarios.sh
-- parses (requests, rps, bytes/s, latency percentiles in microseconds, errors by kind). wrk's
-- latency runs from request write to response end; connect time is not included, even with
-- `Connection: close`. Loaded by get.lua, pipeline.lua and post.lua through
-- dofile(os.getenv("BENCH_DIR") .. "/report.lua").
done = function(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d duration_us=%d bytes=%d rps=%.1f bytes_per_s=%.0f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    summary.requests / secs, summary.bytes / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
