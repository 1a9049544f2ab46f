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
local bit = require("bit")

ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } kq_timespec;
int clock_gettime(int clock_id, kq_timespec *tp);
]])

local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local rshift, lshift, ror, tobit, tohex = bit.rshift, bit.lshift, bit.ror, bit.tobit, bit.tohex
local byte, char, rep, format = string.byte, string.char, string.rep, string.format

local clock = ffi.new("kq_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

-- SHA-256 and HMAC ----------------------------------------------------------------------------------------

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}
for i = 1, 64 do K[i] = tobit(K[i]) end

local function u32(value) -- 4 bytes, big-endian
  return char(band(rshift(value, 24), 255), band(rshift(value, 16), 255), band(rshift(value, 8), 255), band(value, 255))
end

local w = {}
local function sha256(message)
  local length = #message
  local message = message .. "\128" .. rep("\0", (64 - (length + 9) % 64) % 64) .. u32(0) .. u32(length * 8)
  local h0, h1, h2, h3 = tobit(0x6a09e667), tobit(0xbb67ae85), tobit(0x3c6ef372), tobit(0xa54ff53a)
  local h4, h5, h6, h7 = tobit(0x510e527f), tobit(0x9b05688c), tobit(0x1f83d9ab), tobit(0x5be0cd19)
  for chunk = 1, #message, 64 do
    for i = 0, 15 do
      local b1, b2, b3, b4 = byte(message, chunk + 4 * i, chunk + 4 * i + 3)
      w[i] = bor(lshift(b1, 24), lshift(b2, 16), lshift(b3, 8), b4)
    end
    for i = 16, 63 do
      local x, y = w[i - 15], w[i - 2]
      local s0 = bxor(ror(x, 7), ror(x, 18), rshift(x, 3))
      local s1 = bxor(ror(y, 17), ror(y, 19), rshift(y, 10))
      w[i] = tobit(w[i - 16] + s0 + w[i - 7] + s1)
    end
    local a, b, c, d, e, f, g, h = h0, h1, h2, h3, h4, h5, h6, h7
    for i = 0, 63 do
      local t1 = tobit(h + bxor(ror(e, 6), ror(e, 11), ror(e, 25)) + bxor(band(e, f), band(bnot(e), g)) + K[i + 1] + w[i])
      local t2 = tobit(bxor(ror(a, 2), ror(a, 13), ror(a, 22)) + bxor(band(a, b), band(a, c), band(b, c)))
      h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
    end
    h0, h1, h2, h3 = tobit(h0 + a), tobit(h1 + b), tobit(h2 + c), tobit(h3 + d)
    h4, h5, h6, h7 = tobit(h4 + e), tobit(h5 + f), tobit(h6 + g), tobit(h7 + h)
  end
  return u32(h0) .. u32(h1) .. u32(h2) .. u32(h3) .. u32(h4) .. u32(h5) .. u32(h6) .. u32(h7)
end

local function padded_key(key, pad)
  if #key > 64 then key = sha256(key) end
  key = key .. rep("\0", 64 - #key)
  local out = {}
  for i = 1, 64 do out[i] = char(bxor(byte(key, i), pad)) end
  return table.concat(out)
end

local inner_pad, outer_pad
local function hmac_hex(message)
  local digest = sha256(outer_pad .. sha256(inner_pad .. message))
  local hex = {}
  for i = 1, 32 do hex[i] = tohex(byte(digest, i), 2) end
  return table.concat(hex)
end

-- The buyers ----------------------------------------------------------------------------------------------

local sku, price, currency, tag, most_buyers
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
  inner_pad, outer_pad = padded_key(args[3], 0x36), padded_key(args[3], 0x5c)
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

function delay()
  if head <= tail or not (sold_out or started_buyers >= most_buyers) then return 0 end
  if under_way == 0 then wrk.thread:stop() end
  return PARKED_MS
end

function request()
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
