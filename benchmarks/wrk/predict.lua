-- POST one prediction with ?wait, counting answers that are not 200 (a 202 means the
-- result did not come within the wait). Set by benchmarks/api_load.py through the
-- environment: MLQ_WRK_BODY (the JSON body), MLQ_WRK_KEY (an API key).
wrk.method = "POST"
wrk.body = os.getenv("MLQ_WRK_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("MLQ_WRK_KEY")

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  not_ok = 0
end

function response(status, headers, body)
  if status ~= 200 then
    not_ok = not_ok + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("not_ok")
  end
  io.write(string.format(
    "MLQ requests=%d duration_us=%d p50_us=%d p99_us=%d not_ok=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
