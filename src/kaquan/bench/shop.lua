-- `kaquan bench shop`'s buyers, for wrk (LuaJIT): place an order, have the dev gateway notify the payment
-- (HMAC-SHA256 signed here, as the gateway signs it), look the order up and see its codes.
--
-- wrk's Lua API does not say which connection a response arrived on, so a buyer is not tied to one:
-- every request carries an X-Request-ID naming its buyer and step (the server echoes it), a response
-- queues that buyer's next step, and whichever connection asks next sends it. Each buyer has one request
-- in flight at a time, and there are never more buyers under way than connections. Once an order is
-- refused as sold out no new buyer starts; when the last buyer under way is done the thread stops.
--
-- Arguments (after wrk's `--`): sku, price (minor units), dev gateway secret, currency, run tag,
-- most buyers to start, result file.

local ffi = require("ffi")
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*/)") or "./"
local kq = dofile(here .. "kq_hmac.lua") -- SHA-256 and HMAC, shared with agent.lua

ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } kq_timespec;
int clock_gettime(int clock_id, kq_timespec *tp);
int getpid(void);
int tgkill(int tgid, int tid, int sig);
]])
local SIGINT = 2

local format = string.format

local clock = ffi.new("kq_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

-- The buyers ----------------------------------------------------------------------------------------------

local sku, price, currency, tag, most_buyers, hmac_hex
result_path = nil -- read back by done(), which runs in wrk's main Lua state
local queue, head, tail = {}, 1, 0 -- next steps waiting for a connection: {buyer, step}
local buyers = {} -- per buyer: started, number, secret, token, step sent at
started_buyers, under_way, max_under_way = 0, 0, 0
sold_out = false
delivered, refused_sold_out, undelivered, errors_5xx, other_refusals, slow_requests, fillers = 0, 0, 0, 0, 0, 0, 0
duplicate_codes = 0
first_started, last_delivered = nil, nil
buyer_ms, order_ms, notify_ms, lookup_ms = {}, {}, {}, {}
refusals = {}
local seen_codes = {}
local SLOW_MS = 2000 -- wrk's own request time-out

function init(args)
  sku, price, currency, tag = args[1], tonumber(args[2]), args[4], args[5]
  hmac_hex = kq.hmac_hex(args[3])
  most_buyers, result_path = tonumber(args[6]), args[7]
end

local function address(n) -- 127.1.0.1, 127.1.0.2, …: never 127.0.0.1, the proxy kaquan trusts
  return format("127.%d.%d.%d", 1 + math.floor(n / 65536), math.floor(n / 256) % 256, n % 256)
end

local function push(n, step)
  tail = tail + 1
  queue[tail] = { n, step }
end

local function send(n, step)
  local buyer = buyers[n]
  buyer.sent = now_ms()
  local id = format("kqb%07d.%d", n, step)
  if step == 1 then
    return wrk.format("POST", "/api/orders", {
      ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = format("%s-%d", tag, n),
      ["X-Client-Token"] = format("%s-client-%07d", tag, n),
      ["X-Forwarded-For"] = address(n),
      ["X-Request-ID"] = id,
    }, format('{"sku":"%s","quantity":1}', sku))
  elseif step == 2 then
    local body = format(
      '{"payment":"%s","txn_id":"%s-%d","amount_minor":%d,"currency":"%s","status":"succeeded"}',
      buyer.token, tag, n, price, currency
    )
    local stamp = tostring(os.time())
    return wrk.format("POST", "/payments/dev/notify", {
      ["Content-Type"] = "application/json",
      ["Kaquan-Dev-Signature"] = format("t=%s,v1=%s", stamp, hmac_hex(stamp .. "." .. body)),
      ["X-Request-ID"] = id,
    }, body)
  end
  return wrk.format("POST", "/api/orders/lookup", {
    ["Content-Type"] = "application/json",
    ["X-Forwarded-For"] = address(n),
    ["X-Request-ID"] = id,
  }, format('{"number":"%s","secret":"%s"}', buyer.number, buyer.secret))
end

-- A connection with nothing to send once no new buyer may start is not needed again: every buyer still
-- under way has its request in flight on another connection, whose answer queues the buyer's next step
-- for that connection. So it rests until the run ends; were it woken it would have to send a filler
-- request (wrk sends something on every connection it wakes), and fillers cost the server more than
-- the buyers (an hour: longer than any storm; wrk stops at its -d or when the last buyer is done).
local PARKED_MS = 3600000

-- Stopping the thread is not enough to end the run: wrk's main thread sleeps out -d before it collects the
-- threads, unless SIGINT (wrk's own "stop now", as at a terminal) wakes it. So the last buyer's end sends it.
local function end_the_run()
  wrk.thread:stop()
  local pid = ffi.C.getpid()
  ffi.C.tgkill(pid, pid, SIGINT) -- to the main thread (its id is the process's), which wrk's handler stops
end

function delay()
  if head <= tail or not (sold_out or started_buyers >= most_buyers) then return 0 end
  if under_way == 0 then end_the_run() end
  return PARKED_MS
end

-- Before the run wrk calls request() once on this thread's state to check the script (wrk.c: thread 0's
-- script_verify_request) and never sends what it returns. Were that call to start a buyer, the buyer would
-- never be answered, stay under way, and keep the thread from stopping until wrk's -d.
local checked = false

function request()
  if not checked then
    checked = true
    return wrk.format("GET", "/static/style.css")
  end
  if head <= tail then
    local item = queue[head]
    queue[head] = nil
    head = head + 1
    return send(item[1], item[2])
  end
  if not sold_out and started_buyers < most_buyers then
    started_buyers = started_buyers + 1
    under_way = under_way + 1
    if under_way > max_under_way then max_under_way = under_way end
    buyers[started_buyers] = { started = now_ms() }
    first_started = first_started or buyers[started_buyers].started
    return send(started_buyers, 1)
  end
  fillers = fillers + 1 -- a connection woken for a step another connection took first
  return wrk.format("GET", "/static/style.css")
end

local function finish(n)
  buyers[n] = nil
  under_way = under_way - 1
end

local function refused(n, status, body)
  local code = body:match('"code":"([^"]+)"') or tostring(status)
  refusals[code] = (refusals[code] or 0) + 1
  other_refusals = other_refusals + 1
  finish(n)
end

function response(status, headers, body)
  local id = headers["X-Request-ID"] or headers["x-request-id"]
  local n, step = (id or ""):match("^kqb(%d+)%.(%d)$")
  if n == nil then return end -- a filler's answer
  n, step = tonumber(n), tonumber(step)
  local buyer = buyers[n]
  local took = now_ms() - buyer.sent
  if took > SLOW_MS then slow_requests = slow_requests + 1 end
  if status >= 500 then errors_5xx = errors_5xx + 1 end
  if step == 1 then
    order_ms[#order_ms + 1] = took
    if status == 201 then
      buyer.number = body:match('"number":"([^"]+)"')
      buyer.secret = body:match('"lookup_secret":"([^"]+)"')
      buyer.token = body:match('/pay/([^"/]+)"')
      push(n, 2)
    elseif status == 409 and body:find('"out_of_stock"', 1, true) then
      sold_out = true
      refused_sold_out = refused_sold_out + 1
      finish(n)
    else
      refused(n, status, body)
    end
  elseif step == 2 then
    notify_ms[#notify_ms + 1] = took
    if status == 200 then push(n, 3) else refused(n, status, body) end
  else
    lookup_ms[#lookup_ms + 1] = took
    local secret = status == 200 and body:match('"codes":%[{[^}]-"secret":"([^"]+)"')
    if secret then
      delivered = delivered + 1
      last_delivered = now_ms()
      buyer_ms[#buyer_ms + 1] = now_ms() - buyer.started
      if seen_codes[secret] then duplicate_codes = duplicate_codes + 1 end
      seen_codes[secret] = true
      finish(n)
    else
      undelivered = undelivered + 1
      refused(n, status, body)
    end
  end
end

-- The result, read by `kaquan.bench.shop` -----------------------------------------------------------------

local function numbers(list)
  local out = {}
  for i = 1, #list do out[i] = format("%.3f", list[i]) end
  return "[" .. table.concat(out, ",") .. "]"
end

function done(summary, latency, requests)
  local thread = the_thread
  local counts = {}
  for _, name in ipairs({
    "started_buyers", "max_under_way", "under_way", "delivered", "refused_sold_out", "undelivered",
    "errors_5xx", "other_refusals", "slow_requests", "fillers", "duplicate_codes",
  }) do
    counts[#counts + 1] = format('"%s":%d', name, thread:get(name))
  end
  local reasons = {}
  for code, count in pairs(thread:get("refusals")) do reasons[#reasons + 1] = format('"%s":%d', code, count) end
  local lists = {}
  for _, name in ipairs({ "buyer_ms", "order_ms", "notify_ms", "lookup_ms" }) do
    lists[#lists + 1] = format('"%s":%s', name, numbers(thread:get(name)))
  end
  local out = assert(io.open(thread:get("result_path"), "w"))
  out:write(format(
    '{%s,"elapsed_ms":%.3f,"refusals":{%s},%s,"duration_us":%d,"requests":%d,"wrk_timeouts":%d}\n',
    table.concat(counts, ","), (thread:get("last_delivered") or 0) - (thread:get("first_started") or 0),
    table.concat(reasons, ","), table.concat(lists, ","),
    summary.duration, summary.requests, summary.errors.timeout
  ))
  out:close()
end

function setup(thread)
  the_thread = thread
end
