-- wrk's side of `cargo bench --bench ingest -- --outside --bodies DIR`: the
-- same workload from another load generator. Each request is a distinct
-- body of DIR/bodies.jsonl, the threads taking every n-th line, so that no
-- notification is sent twice (a repeat is a duplicate, a faster answer).
-- The service must trust DIR/root.der (`verification.trusted_roots`) and
-- the bench's app (`com.example.app`, 1234567890):
--
--   BODIES=DIR/bodies.jsonl THREADS=2 wrk -t2 -c32 -d10s --latency \
--     -s benches/ingest/wrk.lua http://127.0.0.1:8080/v2/notifications
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  local threads = tonumber(os.getenv("THREADS") or "1")
  bodies = {}
  local i = 0
  for line in io.lines(os.getenv("BODIES")) do
    if i % threads == id then
      table.insert(bodies, line)
    end
    i = i + 1
  end
  next_body = 1
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local body = bodies[next_body]
  if body == nil then
    error("the bodies ran out: sign more (--notifications with a new --bodies DIR)")
  end
  next_body = next_body + 1
  return wrk.format(nil, nil, nil, body)
end
