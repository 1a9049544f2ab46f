"""`wrk` as the load generator of HTTP benchmarks: C, one thread, a Lua script giving every request a new buyer.

A load generator in Python on the same two cores measures itself as much as the server (the
harness's client peaks near 2,000 requests/s); `wrk` (Debian package `wrk`) sends tens of
thousands. Its Lua script (below) makes each request a purchase by a buyer of its own, with a
device token of its own, counts the answers by status and result, writes the order numbers it
is told to a file (to check no order number is told twice), and stops after a given number of
answers. `done` prints one line `WRK {json}` that `run` reads back.

Given a tickets file, the script also writes down every ticket it is given (a 202), with the device
token and the answer's Retry-After, for `bench.tickets` to poll as the buyer's client would. The
answer does not say which request it answers, so each request then sends its device token as its
`X-Request-ID` too, which the server echoes.
"""

import asyncio
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

WRK = "wrk"
MISSING = "wrk is not installed: `apt-get install wrk` (Debian/Ubuntu), then run the benchmark again"
TIMEOUT_S = 2  # wrk's own default: a request unanswered this long counts as a time-out

PURCHASES_LUA = r"""
-- args: purchase path, buyer prefix, answers after which to stop (0: run for the duration), orders file ('' none),
-- tickets file ('' none)
local threads = {}
local counted = {"answers", "won", "sold_out", "limit_reached", "queued", "s4xx", "s5xx", "other"}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  path, prefix, stop_after, orders_path, tickets_path = args[1], args[2], tonumber(args[3]), args[4], args[5]
  sent = 0
  for _, name in ipairs(counted) do _G[name] = 0 end
  if orders_path ~= "" then orders = io.open(orders_path .. "." .. id, "w") end
  if tickets_path ~= "" then tickets = io.open(tickets_path .. "." .. id, "w") end
end

function request()
  sent = sent + 1
  local buyer = string.format("%s-%d-%d", prefix, id, sent)
  local body = '{"buyer":"' .. buyer .. '","quantity":1,"request_id":"1"}'
  local device = string.format("%s%03d%016d", prefix, id, sent)
  local headers = {["Content-Type"] = "application/json", ["X-Device-Token"] = device}
  if tickets then headers["X-Request-ID"] = device end
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  answers = answers + 1
  if status >= 500 then s5xx = s5xx + 1
  elseif status == 202 then
    queued = queued + 1
    if tickets then
      local ticket = string.match(body, '"ticket":"([^"]+)"')
      local device = headers["x-request-id"] or headers["X-Request-ID"]
      if ticket and device then
        tickets:write(ticket, " ", device, " ", headers["retry-after"] or headers["Retry-After"] or "1", "\n")
        tickets:flush()
      end
    end
  elseif status ~= 200 then s4xx = s4xx + 1
  elseif string.find(body, '"result":"won"', 1, true) then
    won = won + 1
    if orders then
      orders:write(string.match(body, '"order_no":"([^"]+)"') or "?", "\n")
      orders:flush()
    end
  elseif string.find(body, '"result":"sold_out"', 1, true) then sold_out = sold_out + 1
  elseif string.find(body, '"result":"limit_reached"', 1, true) then limit_reached = limit_reached + 1
  else other = other + 1 end
  if stop_after > 0 and answers >= stop_after then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local totals = {}
  for _, name in ipairs(counted) do totals[name] = 0 end
  for _, thread in ipairs(threads) do
    for _, name in ipairs(counted) do totals[name] = totals[name] + (thread:get(name) or 0) end
  end
  local parts = {}
  for _, name in ipairs(counted) do table.insert(parts, string.format('"%s":%d', name, totals[name])) end
  local e = summary.errors
  io.write(string.format(
    'WRK {"duration_us":%d,"requests":%d,"timeouts":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,'
      .. '"p50_us":%d,"p99_us":%d,"max_us":%d,%s}\n',
    summary.duration, summary.requests, e.timeout, e.connect, e.read, e.write,
    latency:percentile(50), latency:percentile(99), latency.max, table.concat(parts, ",")))
end
"""


class WrkMissing(RuntimeError):
    """`wrk` is not on the PATH."""

    def __init__(self) -> None:
        super().__init__(MISSING)


@dataclass(frozen=True)
class Load:
    """What one `wrk` run saw: answers by kind, latencies over every answered request, errors."""

    seconds: float
    answers: int
    won: int
    sold_out: int
    limit_reached: int
    queued: int
    errors_4xx: int
    errors_5xx: int
    other: int
    timeouts: int
    socket_errors: int  # connect, read and write errors
    p50_ms: float
    p99_ms: float
    max_ms: float
    order_numbers: list[str]

    @property
    def per_s(self) -> float:
        return self.answers / self.seconds if self.seconds else 0.0


def together(loads: list[Load]) -> Load:
    """Several runs as one: counts and seconds added; p50 the runs' median of medians, p99 and max the worst."""
    return Load(
        seconds=sum(load.seconds for load in loads),
        answers=sum(load.answers for load in loads),
        won=sum(load.won for load in loads),
        sold_out=sum(load.sold_out for load in loads),
        limit_reached=sum(load.limit_reached for load in loads),
        queued=sum(load.queued for load in loads),
        errors_4xx=sum(load.errors_4xx for load in loads),
        errors_5xx=sum(load.errors_5xx for load in loads),
        other=sum(load.other for load in loads),
        timeouts=sum(load.timeouts for load in loads),
        socket_errors=sum(load.socket_errors for load in loads),
        p50_ms=sorted(load.p50_ms for load in loads)[len(loads) // 2],
        p99_ms=max(load.p99_ms for load in loads),
        max_ms=max(load.max_ms for load in loads),
        order_numbers=[number for load in loads for number in load.order_numbers],
    )


def _told(scratch: Path) -> list[str]:
    """The order numbers the script wrote down, from every thread's file."""
    return [number for file in scratch.glob("orders.*") for number in file.read_text().split()]


def require_wrk() -> str:
    """The path of `wrk`, or WrkMissing with the line that installs it."""
    found = shutil.which(WRK)
    if found is None:
        raise WrkMissing()
    return found


async def purchases(
    port: int,
    path: str,
    *,
    prefix: str,
    connections: int,
    seconds: float,
    stop_after: int = 0,
    host: str = "127.0.0.1",
    tickets: Path | None = None,
) -> Load:
    """Purchases by new buyers over `connections` connections for `seconds` (or until `stop_after` answers).

    `tickets`: where the script writes the tickets it is given (`<tickets>.<thread>`, for `bench.tickets`).
    """
    wrk = require_wrk()
    with tempfile.TemporaryDirectory(prefix="kaquan-wrk-") as scratch:
        script = Path(scratch) / "purchases.lua"
        script.write_text(PURCHASES_LUA)
        orders = Path(scratch) / "orders"
        command = [
            wrk,
            "--threads",
            "1",
            "--connections",
            str(connections),
            "--duration",
            f"{max(1, round(seconds))}s",
            "--timeout",
            f"{TIMEOUT_S}s",
            "--script",
            str(script),
            f"http://{host}:{port}{path}",
            "--",
            path,
            prefix,
            str(stop_after),
            str(orders),
            str(tickets) if tickets is not None else "",
        ]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await process.communicate()
        text = out.decode(errors="replace")
        line = next((line for line in text.splitlines() if line.startswith("WRK ")), None)
        if process.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({process.returncode}): {text[-2000:]}")
        numbers = _told(Path(scratch))
    said = json.loads(line[4:])
    return Load(
        seconds=said["duration_us"] / 1e6,
        answers=said["answers"],
        won=said["won"],
        sold_out=said["sold_out"],
        limit_reached=said["limit_reached"],
        queued=said["queued"],
        errors_4xx=said["s4xx"],
        errors_5xx=said["s5xx"],
        other=said["other"],
        timeouts=said["timeouts"],
        socket_errors=said["connect_errors"] + said["read_errors"] + said["write_errors"],
        p50_ms=said["p50_us"] / 1000,
        p99_ms=said["p99_us"] / 1000,
        max_ms=said["max_us"] / 1000,
        order_numbers=numbers,
    )
