-- wrk script for bench/issuance.py: POST /token, one DPoP proof per request, to
-- gatepass, its ceiling or the peer.
--
-- Environment (set by bench/issuance.py):
--   BENCH_REQUESTS  a file: line 1 is the form body, every further line one DPoP proof
--   BENCH_THREADS   wrk's -t, so that each thread takes its own slice of the proofs
--   BENCH_MODE      "once": a proof is sent at most once; when a thread runs out it
--                   flags "exhausted", stops, and sends only GET /healthz meanwhile.
--                   "cycle": proofs are reused (for the ceiling, which checks none).
--   BENCH_OUT       where done() writes the phase result as JSON
--   BENCH_AUTHORIZATION  optional: an Authorization header sent with every request
--                   (the peer's client_secret_basic client authentication)
--
-- wrk calls request() once per thread before the run to check the request shape;
-- that call spends one proof of thread 0 without sending it, which is harmless.

local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  local count = tonumber(os.getenv("BENCH_THREADS") or "1")
  once = os.getenv("BENCH_MODE") ~= "cycle"
  local file = assert(io.open(os.getenv("BENCH_REQUESTS"), "r"))
  body = file:read("*l")
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
  available = #proofs
  cursor = 0
  sent = 0
  exhausted = 0
  non200 = 0
  first_error = ""
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  local authorization = os.getenv("BENCH_AUTHORIZATION")
  if authorization ~= nil and authorization ~= "" then
    headers["Authorization"] = authorization
  end
end

function request()
  cursor = cursor + 1
  if cursor > #proofs then
    if once then
      if exhausted == 0 then
        exhausted = 1
        wrk.thread:stop()
      end
      return wrk.format("GET", "/healthz")
    end
    cursor = 1
  end
  sent = sent + 1
  headers["DPoP"] = proofs[cursor]
  return wrk.format("POST", "/token", headers, body)
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    if first_error == "" then
      first_error = tostring(status) .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

local function json_string(text)
  local escaped = string.gsub(text, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. escaped .. '"'
end

function done(summary, latency, requests)
  local non200_total, exhausted_total, sent_total, available = 0, 0, 0, 0
  local sample = ""
  for _, thread in ipairs(threads) do
    non200_total = non200_total + (thread:get("non200") or 0)
    exhausted_total = exhausted_total + (thread:get("exhausted") or 0)
    sent_total = sent_total + (thread:get("sent") or 0)
    available = available + (thread:get("available") or 0)
    local first = thread:get("first_error") or ""
    if sample == "" then
      sample = first
    end
  end
  local errors = summary.errors
  local parts = {
    string.format('"requests": %d', summary.requests),
    string.format('"duration_us": %d', summary.duration),
    string.format('"bytes": %d', summary.bytes),
    string.format(
      '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}',
      errors.connect, errors.read, errors.write, errors.timeout
    ),
    string.format('"status_errors": %d', errors.status),
    string.format('"non200": %d', non200_total),
    string.format('"exhausted_threads": %d', exhausted_total),
    string.format('"proofs_sent": %d', sent_total),
    string.format('"proofs_available": %d', available),
    string.format('"first_error": %s', json_string(sample)),
    string.format(
      '"latency_us": {"min": %d, "mean": %.1f, "stdev": %.1f, "max": %d, '
        .. '"p50": %d, "p75": %d, "p90": %d, "p99": %d, "p99_9": %d}',
      latency.min, latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(75), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9)
    ),
  }
  local out = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  out:write("{" .. table.concat(parts, ", ") .. "}\n")
  out:close()
end
