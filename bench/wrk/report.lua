-- wrk script for bench/run.sh: sets the request from the environment and
-- writes one JSON line with throughput, errors and latency percentiles.
--
--   BENCH_HEADER_NAME / BENCH_HEADER_VALUE  one extra request header (optional)
--   BENCH_METHOD, BENCH_BODY, BENCH_CONTENT_TYPE  for POST requests (optional)
--   BENCH_OUT  file the JSON line is appended to (default: stdout)
--
-- No request()/response() callback is defined, so wrk keeps its static,
-- pre-formatted request and does not parse response bodies in Lua: the
-- client costs as little CPU as wrk can, which matters on 2 cores.

local hname = os.getenv("BENCH_HEADER_NAME")
local hvalue = os.getenv("BENCH_HEADER_VALUE")
if hname and hname ~= "" then
  wrk.headers[hname] = hvalue or ""
end
local method = os.getenv("BENCH_METHOD")
if method and method ~= "" then
  wrk.method = method
end
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/x-www-form-urlencoded"
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  local line = string.format(
    '{"requests":%d,"duration_s":%.3f,"bytes":%d,"rps":%.1f,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"mean":%.1f,"max":%d}}\n',
    summary.requests, secs, summary.bytes, summary.requests / secs,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max)
  local out = os.getenv("BENCH_OUT")
  if out and out ~= "" then
    local f = assert(io.open(out, "a"))
    f:write(line)
    f:close()
  else
    io.write(line)
  end
end
