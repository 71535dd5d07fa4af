-- wrk script for bench/proxy.py: counts non-200 answers of the direct upstream run.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non200")
  end
  local file = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  file:write(string.format(
    '{"requests": %d, "seconds": %.3f, "non200": %d, "exhausted": 0, ' ..
    '"p50_us": %d, "p99_us": %d}',
    summary.requests, summary.duration / 1e6, bad,
    latency:percentile(50), latency:percentile(99)))
  file:close()
end
