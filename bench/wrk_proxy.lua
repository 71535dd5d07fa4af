-- wrk script for bench/proxy.py: GET through the proxy, one DPoP proof per request.
--
-- BENCH_REQUESTS: line 1 the path, line 2 the Authorization value, then one proof a
-- line. BENCH_THREADS: wrk's -t, so each thread takes its own slice. BENCH_OUT: where
-- done() writes the result. A proof is sent at most once; a thread that runs out
-- stops.

local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  local count = tonumber(os.getenv("BENCH_THREADS") or "1")
  local file = assert(io.open(os.getenv("BENCH_REQUESTS"), "r"))
  path = file:read("*l")
  authorization = file:read("*l")
  proofs = {}
  local position = 0
  for line in file:lines() do
    if line ~= "" then
      if position % count == index then
        proofs[#proofs + 1] = line
      end
      position = position + 1
    end
  end
  file:close()
  cursor = 0
  non200 = 0
  exhausted = 0
end

function request()
  cursor = cursor + 1
  if cursor > #proofs then
    exhausted = 1
    wrk.thread:stop()
    cursor = #proofs
  end
  return wrk.format("GET", path, { ["Authorization"] = authorization, ["DPoP"] = proofs[cursor] })
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  local out_of_proofs = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non200")
    out_of_proofs = out_of_proofs + thread:get("exhausted")
  end
  local file = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  file:write(string.format(
    '{"requests": %d, "seconds": %.3f, "non200": %d, "exhausted": %d, ' ..
    '"p50_us": %d, "p99_us": %d}',
    summary.requests, summary.duration / 1e6, bad, out_of_proofs,
    latency:percentile(50), latency:percentile(99)))
  file:close()
end
