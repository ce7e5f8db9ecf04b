-- wrk script for `cargo bench -p feed --bench ingest`: every request is
-- POST /api/posts with a fresh post id and a fresh Idempotency-Key (UUIDs),
-- as background sync sends them. Prints one machine-readable line at the end.
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + tid * 7919)
end

local function uuid()
  return (string.gsub("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", "[xy]", function(c)
    local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
    return string.format("%x", v)
  end))
end

function request()
  local body = '{"id":"' .. uuid() .. '","title":"wrk post","location":"Bench"}'
  return wrk.format("POST", "/api/posts", {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = uuid(),
  }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BGSYNC requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
