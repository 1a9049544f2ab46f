"""`kaquan bench shop`: the shop's whole sale path under a storm of buyers, against its raw-SQL floor.

The storm: a SKU with `codes` codes, `buyers` buyers at once from distinct addresses, each buying one
unit until the codes are gone. A buyer places an order (`POST /api/orders`), the dev gateway sends
its signed payment notification (`POST /payments/dev/notify`, HMAC-SHA256 as the gateway signs it),
and the buyer looks the order up (`POST /api/orders/lookup`) and sees its code. A buyer counts as
served when its code is on screen; its time is from its first request to then.

The load generator is `wrk` (C, one thread) with `shop.lua`, so the server, not a Python client on the
same two cores, is what is measured. Each buyer's address is sent in X-Forwarded-For, and the bench's
server trusts it from 127.0.0.1 alone (`KAQUAN_TRUSTED_PROXIES`), as a server behind a reverse proxy
does: every per-address throttle and hold cap then counts each buyer apart, as in a real storm.

The server is `kaquan serve` as a user runs it (uvicorn, `--workers N`) on the database and Redis of
the bench's own settings, with the dev gateway switched on for the bench's own server only, under a
secret drawn for the run. With `--url` the bench starts no server and sends the storm there instead (a
deployment behind a load balancer, deploy/cluster/): that server must run on the bench's database with
the dev gateway on under the bench's `KAQUAN_DEV_GATEWAY_SECRET`, and trust the bench's address in
X-Forwarded-For (directly or through its proxy). Its CPU and memory are then not the bench's to read.

The baseline, in the same run on the same database: the same storm with no HTTP and no kaquan code,
`buyers` tasks over `raw_connections` asyncpg connections (the most one server process opens), one
transaction per purchase: claim one available code (`FOR UPDATE SKIP LOCKED`), insert a delivered
order, hand the code to it. That is the least a sale must write; the bench writes those tables
itself on purpose, on a SKU of its own that is never for sale.

While the storm runs, the bench samples `pg_stat_activity` every few milliseconds: what the server's
connections wait for (a lock, the WAL, the client) is the database's own account of where time goes.
"""

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg

from kaquan.bench.goods import stocked_sku
from kaquan.bench.harness import (
    HOST,
    Progress,
    ServerProcess,
    Target,
    cpu_seconds,
    free_port,
    quiet,
    raise_open_files_limit,
    server_environment,
)
from kaquan.bench.pgbench import libpq_url
from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductCreate
from kaquan.inventory import stock
from kaquan.kit.config import Settings
from kaquan.kit.db import describe
from kaquan.kit.errors import DomainError
from kaquan.orders import checks as order_checks
from kaquan.runtime import Runtime

PRICE_MINOR = 990
UNIT_COST_MINOR = 600  # so every delivery books its cost of goods, as a real shop's does
CURRENCY = "CNY"
SAMPLE_EVERY_S = 0.005  # pg_stat_activity
WRK_TIMEOUT_S = 2  # a request unanswered this long counts as a time-out (wrk's default)


class ShopBenchUnavailable(DomainError):
    """Something the shop benchmark needs is not here."""

    status = 400
    code = "bench_unavailable"


@dataclass(frozen=True)
class Options:
    codes: int = 500
    buyers: int = 200  # at once: wrk's connections
    workers: int = 1  # server processes
    seconds: float = 120.0  # the most the storm may take
    raw_connections: int = 20
    profile: Path | None = None  # py-spy's profile of the server during the storm: .svg flame graph, else raw stacks
    url: str | None = None  # a server the bench does not start (http://host:port), instead of its own


@dataclass(frozen=True)
class Stage:
    tag: str
    sku_code: str
    sku_id: int
    baseline_sku_id: int


async def set_up(rt: Runtime, codes: int) -> Stage:
    """A SKU on sale with `codes` codes, and a baseline SKU (never for sale) with as many."""
    tag = f"BENCH-SHOP-{int(time.time())}-{secrets.token_hex(2)}".upper()
    ids = []
    async with rt.db.transaction() as session:
        product = await catalog.create_product(session, ProductCreate(name=tag, kind="voucher"), actor="bench")
        for code in (tag, f"{tag}-RAW"):
            sku = await stocked_sku(
                rt,
                session,
                product_id=product.id,
                code=code,
                price_minor=PRICE_MINOR,
                codes=codes,
                actor="bench",
                unit_cost_minor=UNIT_COST_MINOR,
            )
            ids.append(sku.id)
            if code != tag:
                sku.active = False
    return Stage(tag, tag, ids[0], ids[1])


# The storm over HTTP ---------------------------------------------------------------------------------------


@dataclass
class WaitSamples:
    """What the server's database connections were doing, sampled: `(state, wait event)` → how often seen."""

    seen: Counter[str] = field(default_factory=Counter)
    samples: int = 0

    def top(self, count: int = 8) -> dict[str, float]:
        """The most frequent, as the average number of connections in that state at any moment."""
        return {name: round(n / self.samples, 2) for name, n in self.seen.most_common(count)} if self.samples else {}


async def sample_waits(dsn: str, samples: WaitSamples, stop: asyncio.Event) -> None:
    """Count what every busy connection to the bench's database is doing, until `stop` is set.

    "active" is a statement running on a CPU, "Lock:transactionid" one waiting for another's row lock,
    "IO:WALSync" or "LWLock:WALWrite" a commit waiting for the disk, "idle in transaction" a transaction
    waiting for its client (the server's Python) to send the next statement.
    """
    connection = await asyncpg.connect(dsn)
    try:
        query = (
            "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'"
        )
        while not stop.is_set():
            for state, kind, event in await connection.fetch(query):
                name = state if state != "active" or kind is None else f"{kind}:{event}"
                samples.seen[name] += 1
            samples.samples += 1
            await asyncio.sleep(SAMPLE_EVERY_S)
    finally:
        await connection.close()


def unavailable(settings: Settings, options: Options | None = None) -> str | None:
    """Why the benchmark cannot run here (checked before anything is written), or None."""
    if not settings.resolved_database_url().startswith(("postgresql", "postgres:")):
        return "kaquan bench shop runs on PostgreSQL: set KAQUAN_DATABASE_URL=postgresql://…"
    if shutil.which("wrk") is None:
        return "wrk is not installed: apt-get install wrk (see the README's setup)"
    if options is not None and options.url is not None:
        try:
            Target.parse(options.url)
        except ValueError as exc:
            return str(exc)
        if options.profile is not None or options.workers != 1:
            return "--profile and --workers are for the bench's own server, not one at --url"
        if not settings.dev_gateway_secret:
            return (
                "--url needs KAQUAN_DEV_GATEWAY_SECRET: the secret of the dev gateway the server at --url runs"
                " (its payments are signed with it)"
            )
    return None


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise ShopBenchUnavailable("wrk is not installed: apt-get install wrk (see the README's setup)")
    return found


async def _profile(server: ServerProcess, path: Path) -> asyncio.subprocess.Process:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return await asyncio.create_subprocess_exec(
        spy,
        "record",
        "--pid",
        str(server.process.pid),
        "--subprocesses",
        "--rate",
        "200",
        "--format",
        "flamegraph" if path.suffix == ".svg" else "raw",  # raw: collapsed stacks, one a line, with counts
        "--output",
        str(path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def storm(
    stage: Stage, address: str, server: ServerProcess | None, options: Options, secret: str, out: Path
) -> dict[str, Any]:
    """wrk's buyers against the server at `address` until the codes are gone; returns what `shop.lua` counted.

    `server`: the bench's own, whose CPU time is read (and profiled); None for a server at `--url`.
    """
    script = resources.files("kaquan.bench").joinpath("shop.lua")
    with resources.as_file(script) as lua:
        command = [
            wrk_binary(),
            "-t1",
            f"-c{options.buyers}",
            f"-d{int(options.seconds)}s",
            f"--timeout={WRK_TIMEOUT_S}s",
            "-s",
            str(lua),
            address,
            "--",
            stage.sku_code,
            str(PRICE_MINOR),
            secret,
            CURRENCY,
            stage.tag,
            str(10 * options.codes),  # buyers refused for other reasons than stock are replaced, up to this
            str(out),
        ]
        spy = await _profile(server, options.profile) if server is not None and options.profile else None
        pids = server.pids() if server is not None else []
        cpu_before = cpu_seconds(pids)
        wrk = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        said, _ = await wrk.communicate()
        cpu_used = cpu_seconds(server.pids() if server is not None else []) - cpu_before
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its flame graph and exits
            await spy.wait()
    written = _read_result(out)
    if wrk.returncode != 0 or written is None:
        raise RuntimeError(f"wrk failed ({wrk.returncode}): {said.decode(errors='replace')[-2000:]}")
    result: dict[str, Any] = json.loads(written)
    result["server_cpu_s"] = cpu_used if server is not None else None
    return result


def _read_result(path: Path) -> str | None:
    """What shop.lua wrote when wrk ended (a small file, read once the storm is over); None if nothing."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


# The raw-SQL floor -----------------------------------------------------------------------------------------

_CLAIM = (
    "SELECT id FROM inventory_codes WHERE sku_id = $1 AND status = 'available'"
    " ORDER BY expires_on NULLS LAST, id LIMIT 1 FOR UPDATE SKIP LOCKED"
)
_ORDER = (
    "INSERT INTO orders (number, channel, source, idempotency_key, request_hash, sku_id, quantity,"
    " unit_price_minor, total_minor, currency, status, contact, lang, created_at, expires_at, paid_at, delivered_at)"
    " VALUES ($1, 'bench', 'raw-sql', $1, '', $2, 1, $3, $3, $4, 'delivered', '', 'zh',"
    " now(), now() + interval '15 minutes', now(), now()) RETURNING id"
)
_HAND = (
    "UPDATE inventory_codes SET status = 'sold', order_id = $1, sold_at = now() WHERE id = $2 AND status = 'available'"
)


@dataclass(frozen=True)
class RawRun:
    orders: int
    per_s: float
    latencies_ms: list[float]


async def raw_sql(dsn: str, sku_id: int, buyers: int, connections: int) -> RawRun:
    """`buyers` tasks buying one code each until none is left, one transaction per purchase."""
    pool = await asyncpg.create_pool(dsn, min_size=connections, max_size=connections)
    latencies: list[float] = []
    sold_out = False
    try:

        async def buyer() -> None:
            nonlocal sold_out
            while not sold_out:
                started = time.perf_counter()
                async with pool.acquire() as connection, connection.transaction():
                    code = await connection.fetchval(_CLAIM, sku_id)
                    if code is None:
                        sold_out = True
                        return
                    number = f"R{secrets.token_hex(12)}"
                    order = await connection.fetchval(_ORDER, number, sku_id, PRICE_MINOR, CURRENCY)
                    await connection.execute(_HAND, order, code)
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(buyer() for _ in range(buyers)))
        elapsed = time.perf_counter() - started
    finally:
        await pool.close()
    return RawRun(len(latencies), len(latencies) / elapsed if elapsed else 0.0, latencies)


# The run ---------------------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (`share` in 0..1); 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def cpu_per_order(cpu_s: float | None, delivered: int) -> float | None:
    """The server's CPU milliseconds per delivered order; None when its CPU was not the bench's to read."""
    if cpu_s is None:
        return None
    return round(1000 * cpu_s / delivered, 1) if delivered else 0.0


async def run(rt: Runtime, options: Options, progress: Progress = quiet) -> dict[str, object]:
    """The storm against a server process, the raw-SQL floor, the checks; returns the JSON line's fields."""
    settings = rt.settings
    if (reason := unavailable(settings, options)) is not None:
        raise ShopBenchUnavailable(reason)
    target = Target.parse(options.url) if options.url is not None else None
    if target is not None and not await target.answers("/healthz"):
        raise ShopBenchUnavailable(f"nothing at {target.url} answers GET /healthz with 200")
    raise_open_files_limit()
    load_before = os.getloadavg()
    progress(f"setting up {options.codes} codes for the shop and {options.codes} for the baseline …")
    stage = await set_up(rt, options.codes)
    dsn = libpq_url(settings.resolved_database_url())
    out = settings.var_dir / f"bench-shop-{stage.tag.lower()}.json"
    waits, stop_sampling = WaitSamples(), asyncio.Event()
    server: ServerProcess | None = None
    if target is None:
        secret = secrets.token_urlsafe(32)
        progress("WARNING: the bench's own server takes payments through the DEV GATEWAY (KAQUAN_DEV_GATEWAY=1)")
        server = await ServerProcess.start(
            server_environment(
                settings,
                KAQUAN_DEV_GATEWAY="1",
                KAQUAN_DEV_GATEWAY_SECRET=secret,
                KAQUAN_TRUSTED_PROXIES="127.0.0.1/32",
            ),
            port=free_port(),
            log_path=settings.var_dir / "bench-shop-server.log",
            workers=options.workers,
        )
        address = f"http://{HOST}:{server.port}"
    else:
        secret, address = settings.dev_gateway_secret or "", target.url
    peak_rss_mb: float | None = None
    try:
        if server is not None:
            await server.wait_ready("/healthz")
        where = f"{options.workers} server processes" if server is not None else address
        progress(f"{options.buyers} buyers at once for {options.codes} codes ({where}) …")
        sampler = asyncio.create_task(sample_waits(dsn, waits, stop_sampling))
        try:
            bought = await storm(stage, address, server, options, secret, out)
        finally:
            stop_sampling.set()
            await sampler
        peak_rss_mb = server.peak_rss_mb() if server is not None else None
    finally:
        if server is not None:
            await server.stop()
        with contextlib.suppress(OSError):
            out.unlink()
    progress(f"the baseline: the same storm in raw SQL over {options.raw_connections} connections …")
    raw = await raw_sql(dsn, stage.baseline_sku_id, options.buyers, options.raw_connections)
    async with rt.db.read() as session:
        orders = await order_checks.orders_of_sku(rt.db, session, stage.sku_id)
        levels = await stock(session, sku_id=stage.sku_id)
    sold = sum(level.sold for level in levels)
    placed = sum(orders.by_status.values())
    delivered = orders.by_status.get("delivered", 0)
    buyer_ms: list[float] = bought["buyer_ms"]
    elapsed_s = bought["elapsed_ms"] / 1000
    orders_per_s = delivered / elapsed_s if elapsed_s > 0 else 0.0
    load_after = os.getloadavg()
    return {
        "db": describe(rt.db.url),
        "redis": bool(settings.redis_url),
        "url": options.url,
        "workers": options.workers if target is None else None,
        "buyers": options.buyers,
        "codes": options.codes,
        "orders_per_s": round(orders_per_s),
        "raw_sql_orders_per_s": round(raw.per_s),
        "ratio_vs_raw_sql": round(orders_per_s / raw.per_s, 2) if raw.per_s else 0.0,
        "p50_ms": round(percentile(buyer_ms, 0.50), 1),
        "p99_ms": round(percentile(buyer_ms, 0.99), 1),
        "oversold": max(0, sold - options.codes),
        "duplicate_codes": bought["duplicate_codes"] + sum(order.short for order in orders.unmatched),
        "all_delivered": delivered == placed == bought["delivered"] == sold and bought["undelivered"] == 0,
        "errors_5xx": bought["errors_5xx"],
        "timeouts": bought["slow_requests"] + bought["under_way"],
        "max_rss_mb": round(peak_rss_mb, 1) if peak_rss_mb is not None else None,
        "delivered": delivered,
        "server_cpu_ms_per_order": cpu_per_order(bought["server_cpu_s"], delivered),
        "stock_adds_up": all(level.adds_up for level in levels),
        "sold_out_answers": bought["refused_sold_out"],
        "refused": bought["refusals"],
        "max_buyers_under_way": bought["max_under_way"],
        "filler_requests": bought["fillers"],
        "order_p50_ms": round(percentile(bought["order_ms"], 0.50), 1),
        "order_p99_ms": round(percentile(bought["order_ms"], 0.99), 1),
        "notify_p50_ms": round(percentile(bought["notify_ms"], 0.50), 1),
        "notify_p99_ms": round(percentile(bought["notify_ms"], 0.99), 1),
        "lookup_p50_ms": round(percentile(bought["lookup_ms"], 0.50), 1),
        "lookup_p99_ms": round(percentile(bought["lookup_ms"], 0.99), 1),
        "raw_sql_p50_ms": round(percentile(raw.latencies_ms, 0.50), 1),
        "raw_sql_p99_ms": round(percentile(raw.latencies_ms, 0.99), 1),
        "raw_sql_connections": options.raw_connections,
        "elapsed_s": round(elapsed_s, 3),
        "mean_buyer_ms": round(statistics.fmean(buyer_ms), 1) if buyer_ms else 0.0,
        "db_waits": waits.top(),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
    }
