-- Agents ordering through the signed open API, for wrk (LuaJIT): `kaquan.bench.agent_wrk` runs it.
--
-- Every request is signed as docs/open-api.md says (KQ1-HMAC-SHA256): a fresh nonce and the current Unix
-- time in each, the agents taking turns request by request. With a batch of 1 a request is one order
-- (POST /open/v1/orders), otherwise `batch` orders of one unit each (POST /open/v1/orders/batch). An
-- order refused for the agent's balance or the stock is counted, not retried; wrk runs for its -d.
--
-- Arguments (after wrk's `--`): sku, orders per request, run tag, result file, then one `key_id:secret`
-- per agent.

local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*/)") or "./"
local kq = dofile(here .. "kq_hmac.lua") -- SHA-256 and HMAC, shared with shop.lua

local format, concat = string.format, table.concat

local sku, batch, tag
local agents = {} -- {key_id, sign}
local sent = 0
result_path = nil -- read back by done(), which runs in wrk's main Lua state
placed, refused, requests_2xx, requests_4xx, errors_5xx = 0, 0, 0, 0, 0
refusals = {}

function init(args)
  sku, batch, tag, result_path = args[1], tonumber(args[2]), args[3], args[4]
  for i = 5, #args do
    local key_id, secret = args[i]:match("^([^:]+):(.+)$")
    agents[#agents + 1] = { key_id, kq.hmac_hex(secret) }
  end
end

local function order(n)
  return format('{"out_order_no":"%s-%d","sku":"%s","quantity":1}', tag, n, sku)
end

-- The canonical string's lines joined by "\n"; the query is always empty here.
local function signed(agent, path, body, nonce)
  local timestamp = tostring(os.time())
  local canonical = concat({ "KQ1-HMAC-SHA256", "POST", path, "", kq.sha256_hex(body), timestamp, nonce }, "\n")
  return {
    ["Content-Type"] = "application/json",
    ["X-Kq-Key"] = agent[1],
    ["X-Kq-Timestamp"] = timestamp,
    ["X-Kq-Nonce"] = nonce,
    ["X-Kq-Signature"] = agent[2](canonical),
  }
end

function request()
  sent = sent + 1
  local agent = agents[(sent - 1) % #agents + 1]
  local nonce = format("%s-n%010d", tag, sent) -- never twice: the tag is the run's, the count the request's
  local first = (sent - 1) * batch
  if batch == 1 then
    local body = order(first)
    return wrk.format("POST", "/open/v1/orders", signed(agent, "/open/v1/orders", body, nonce), body)
  end
  local orders = {}
  for i = 1, batch do orders[i] = order(first + i - 1) end
  local body = '{"orders":[' .. concat(orders, ",") .. "]}"
  return wrk.format("POST", "/open/v1/orders/batch", signed(agent, "/open/v1/orders/batch", body, nonce), body)
end

local function refusal(code)
  refused = refused + 1
  refusals[code] = (refusals[code] or 0) + 1
end

function response(status, headers, body)
  if status >= 500 then
    errors_5xx = errors_5xx + 1
    return
  end
  if status >= 400 then
    requests_4xx = requests_4xx + 1
    refusal(body:match('"code":%s*"([^"]+)"') or tostring(status))
    return
  end
  requests_2xx = requests_2xx + 1
  if batch == 1 then
    placed = placed + 1
    return
  end
  -- each result is {"status": 201, "order": …} or {"status": 409, "error": {"code": …}}
  for result_status in body:gmatch('"status":%s*(%d%d%d)%s*,%s*"order"') do
    if result_status == "201" then placed = placed + 1 end
  end
  for code in body:gmatch('"error":%s*{%s*"code":%s*"([^"]+)"') do refusal(code) end
end

function setup(thread)
  the_thread = thread
end

function done(summary, latency, requests)
  local thread = the_thread
  local reasons = {}
  for code, count in pairs(thread:get("refusals")) do reasons[#reasons + 1] = format('"%s":%d', code, count) end
  local out = assert(io.open(thread:get("result_path"), "w"))
  out:write(format(
    '{"placed":%d,"refused":%d,"requests_2xx":%d,"requests_4xx":%d,"errors_5xx":%d,"refusals":{%s},'
      .. '"duration_us":%d,"requests":%d,"timeouts":%d,"connect_errors":%d,"p50_us":%d,"p99_us":%d}\n',
    thread:get("placed"), thread:get("refused"), thread:get("requests_2xx"), thread:get("requests_4xx"),
    thread:get("errors_5xx"), concat(reasons, ","), summary.duration, summary.requests,
    summary.errors.timeout, summary.errors.connect, latency:percentile(50), latency:percentile(99)
  ))
  out:close()
end
