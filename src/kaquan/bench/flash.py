"""`kaquan bench flash`: a flash-sale storm and its late buyers over HTTP, against baselines of the same run.

The run sets up, through the services, a SKU with `--stock` codes and a live event selling all
of them (limit 1, no buyer verification, the address and device limits lifted: every virtual
buyer comes from 127.0.0.1), and on PostgreSQL a second SKU (never for sale) for `pgbench`.
Then, in one run on one database:

1. **The storm.** `kaquan serve` with `--workers N` as a subprocess (the shipped configuration,
   its access log off and the per-address throttle raised); `wrk` (one thread, C; see
   `kaquan.bench.wrk`) opens `--connections` connections and sends `--buyers` purchases, each by
   a new buyer with a device token of its own, as fast as the server answers. Meanwhile the bench
   polls the event's purchase rows: `storm_last_order_committed_s` is when the last one committed,
   from the storm's start; `orders_per_s` = units sold / that. `storm_first_answer_*` is wrk's
   latency of those requests: a buyer's first answer (won, queued with a ticket, sold out).
2. **Late buyers.** The same connections keep sending new buyers for `--hammer-seconds` after the
   sale is over: `sold_out_answers_per_s`, their p99, time-outs.
3. **Bare ASGI.** The same server (uvicorn, same workers) running `kaquan.bench.bare_asgi` (the
   same sold-out bytes, nothing else) under the same `wrk` load: `ratio_vs_bare_asgi`. The late
   buyers and the baseline take turns, `ALTERNATIONS` rounds of a share of `--hammer-seconds` each,
   both servers up, so that a burst of other work on a shared machine falls on both alike (one
   phase after the other, a minute apart, once read 1.01× for a baseline's bad minute). Their
   p99 is the worst round's.
4. **pgbench** (PostgreSQL): the product's claim, an order insert and the hand-over in one
   transaction, one code per transaction and 100 (`kaquan.bench.pgbench`), over 2 × cores
   connections: `ratio_vs_pgbench` = `orders_per_s / pgbench_single_claim_tps`.
5. **Checks.** The database read back through the modules that own the tables: nothing sold beyond
   the allotment (`oversold`), no code held by two orders nor one order number told to two buyers
   (`duplicate_codes`), the stock adding up during the sale and after the event is ended.

`storm_server_cpu_ms_per_order` is the CPU time (user + system) of every server process from the storm's
start to its last commit, per unit sold: the buyers' answers, sold-out ones included, and the commits. It
moves far less with a busy machine than the storm's times do. `max_rss_mb` is the largest peak RSS of any
server process; `load_average` the machine's
1-minute load when the run began (the figures are only as quiet as the machine).

With `--url` the bench starts no server: the storm and the late buyers go to the server there (a
deployment behind its load balancer, deploy/cluster/), which must run on the bench's database and
Redis with the per-address flash throttle lifted (`KAQUAN_FLASH_PER_IP_PER_MINUTE`: every buyer comes
from the bench's address). The bare-ASGI baseline (it needs a server of the bench's own),
`storm_server_cpu_ms_per_order` and `max_rss_mb` are then left out (null).
"""

import asyncio
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from kaquan.bench import pgbench, tickets, wrk
from kaquan.bench.harness import (
    HOST,
    Progress,
    ServerProcess,
    Target,
    cpu_seconds,
    free_port,
    generated_file,
    quiet,
    raise_open_files_limit,
    server_environment,
)
from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductCreate, SkuCreate
from kaquan.flashsale import committer
from kaquan.flashsale import service as flash_events
from kaquan.flashsale.schemas import EventCreate
from kaquan.inventory import importing, stock
from kaquan.kit import clock
from kaquan.kit.db import describe
from kaquan.kit.errors import DomainError
from kaquan.orders import checks as order_checks
from kaquan.runtime import Runtime

PRICE_MINOR = 990
UNCAPPED = 10_000_000  # the highest per-address and per-device limit an event takes
BARE_ASGI_APP = "kaquan.bench.bare_asgi:app"
COMMIT_POLL_S = 0.02
SETTLE_S = 1.0  # the storm is over when no purchase committed for this long after the last answer
SETTLE_MAX_S = 30.0
PGBENCH_SINGLE_PER_CLIENT = 500
PGBENCH_BATCHES_PER_CLIENT = 20
READY_AT_URL_S = 30.0
READY_ANSWERS_AT_URL = 4  # in a row: with round robin, each of a few processes behind a balancer has answered
ALTERNATIONS = 3  # rounds of late buyers, then the bare-ASGI baseline, in turn


class FlashBenchUnavailable(DomainError):
    """What `kaquan bench flash` was asked cannot run."""

    status = 400
    code = "bench_unavailable"


# The database side ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    tag: str
    sku_id: int
    baseline_sku_id: int
    event_id: int


async def set_up(rt: Runtime, stock_units: int, baseline_units: int) -> Stage:
    """The event's SKU (for sale) with its codes and a live event; a baseline SKU (never for sale) with its own."""
    tag = f"BENCH-FLASH-{int(time.time())}-{secrets.token_hex(2)}".upper()
    async with rt.db.transaction() as session:
        product = await catalog.create_product(session, ProductCreate(name=tag, kind="voucher"), actor="bench")
        skus = []
        for code in (tag, f"{tag}-RAW"):
            sku = await catalog.create_sku(
                session,
                SkuCreate(
                    product_id=product.id, code=code, name=code, face_value_minor=PRICE_MINOR, price_minor=PRICE_MINOR
                ),
                actor="bench",
            )
            units = stock_units if code == tag else baseline_units
            skus.append(sku)
            if not units:
                continue
            await importing.import_file(
                rt.db,
                session,
                rt.vault,
                sku,
                generated_file(units),
                importing.BatchMeta(supplier="bench"),
                actor="bench",
            )
        skus[1].active = False  # baseline stock is never for sale
    starts_at = clock.now()
    async with rt.db.transaction() as session:
        event = await flash_events.create_event(
            rt.db,
            session,
            EventCreate(
                name=tag,
                sku=tag,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(hours=1),
                stock=stock_units,
                price_minor=PRICE_MINOR,
                per_buyer_limit=1,
                requires_verified_buyer=False,
                per_ip_limit=UNCAPPED,
                per_device_limit=UNCAPPED,
            ),
            actor="bench",
        )
    return Stage(tag, skus[0].id, skus[1].id, event.id)


@dataclass(frozen=True)
class Checked:
    """Database truth after the sale."""

    allotted: int
    sold: int
    purchases: int
    held: int
    duplicate_codes: int
    stock_adds_up: bool


async def check(rt: Runtime, stage: Stage, won_numbers: list[str]) -> Checked:
    """Read the event's counters, orders and stock back through their modules and check them.

    A code sold twice would show as an order holding fewer codes than its quantity (a code row
    names one holder, so a second sale takes it away from the first order) or as two buyers
    told the same order number: `duplicate_codes` counts both.
    """
    async with rt.db.read() as session:
        event = await flash_events.get_event(session, stage.event_id)
        counters = await flash_events.counters(session, event)
        unmatched = await order_checks.check_holdings(rt.db, session, source=committer.source_of(stage.event_id))
        stock_rows = await stock(session, sku_id=stage.sku_id)
    told_twice = len(won_numbers) - len(set(won_numbers))
    return Checked(
        allotted=event.allotted,
        sold=counters.sold,
        purchases=counters.purchases,
        held=counters.held,
        duplicate_codes=sum(order.short for order in unmatched) + told_twice,
        stock_adds_up=all(row.adds_up for row in stock_rows) and counters.sold + counters.held == event.allotted,
    )


# The run ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    stock: int
    buyers: int  # the storm's buyers, each sending one purchase
    connections: int
    workers: int  # more than one needs Redis (a gate the processes share)
    storm_seconds: float  # the longest the storm may take (wrk runs this long whatever happens)
    hammer_seconds: float
    pgbench_clients: int
    compare_risk: bool = False  # the storm again on an event of its own, against a server with risk control off
    url: str | None = None  # a server the bench does not start (http://host:port), instead of its own


@dataclass(frozen=True)
class Storm:
    load: wrk.Load
    last_commit_s: float  # from the storm's start to the last purchase committed
    server_cpu_s: float | None  # the server's CPU time over that span (None: a server the bench did not start)
    polls: tickets.Polls  # the ticket holders' polls, until every ticket was answered

    @property
    def order_numbers(self) -> list[str]:
        """Every order number a buyer was told: in the first answer, or by polling the ticket."""
        return self.load.order_numbers + self.polls.order_numbers


async def _storm(rt: Runtime, stage: Stage, target: Target, options: Options, server: ServerProcess | None) -> Storm:
    """The buyers' storm through wrk while the event's purchase rows are watched until they stop growing.

    The storm's ticket holders (`bench.tickets`) poll their tickets meanwhile, as a buyer's client would.
    """
    with tempfile.TemporaryDirectory(prefix="kaquan-tickets-") as scratch:
        holders = tickets.TicketHolders(target.host, target.port, Path(scratch) / "tickets")
        holders.start()
        try:
            load, last_commit_s, server_cpu_s = await _storm_watched(rt, stage, target, options, server, holders)
        finally:
            polls = await holders.finish(within_s=SETTLE_MAX_S)
    return Storm(load, last_commit_s, server_cpu_s, polls)


async def _storm_watched(
    rt: Runtime,
    stage: Stage,
    target: Target,
    options: Options,
    server: ServerProcess | None,
    holders: tickets.TicketHolders,
) -> tuple[wrk.Load, float, float | None]:
    """wrk's load, the seconds from the storm's start to the last purchase committed, and the server's CPU over them."""
    async with rt.db.read() as session:
        event = await flash_events.get_event(session, stage.event_id)
    pids = server.pids() if server is not None else []
    cpu_at_start = cpu_at_last_commit = cpu_seconds(pids)
    started = time.perf_counter()
    storm = asyncio.create_task(
        wrk.purchases(
            target.port,
            f"/api/flash/{stage.event_id}/purchase",
            prefix=f"s{secrets.token_hex(3)}",
            connections=options.connections,
            seconds=options.storm_seconds,
            stop_after=options.buyers,
            host=target.host,
            tickets=holders.tickets_path,
        )
    )
    sold, last_commit = 0, started
    while True:
        async with rt.db.read() as session:
            now_sold = (await flash_events.counters(session, event)).sold
        now = time.perf_counter()
        if now_sold != sold:
            sold, last_commit, cpu_at_last_commit = now_sold, now, cpu_seconds(pids)
        if storm.done() and (sold >= event.allotted or now - last_commit > SETTLE_S or now - started > SETTLE_MAX_S):
            break
        await asyncio.sleep(COMMIT_POLL_S)
    server_cpu_s = cpu_at_last_commit - cpu_at_start if server is not None else None
    return await storm, last_commit - started if sold else 0.0, server_cpu_s


async def _storm_without_risk(rt: Runtime, options: Options, progress: Progress) -> tuple[Storm, int]:
    """The same storm on a second event of its own, the server's risk control off; returns it and the units sold."""
    progress("the storm again, risk control off …")
    stage = await set_up(rt, options.stock, 0)
    server = await ServerProcess.start(
        server_environment(rt.settings, KAQUAN_DEV_GATEWAY="1", KAQUAN_RISK_ENABLED="0"),
        port=free_port(),
        log_path=rt.settings.var_dir / "bench-flash-server-risk-off.log",
        workers=options.workers,
    )
    try:
        await server.wait_ready(f"/api/flash/{stage.event_id}")
        storm = await _storm(rt, stage, Target(HOST, server.port), options, server)
    finally:
        await server.stop()
    checked = await check(rt, stage, storm.order_numbers)
    await rt.flash.end_event(stage.event_id, actor="bench")
    return storm, checked.sold


async def _late_buyers(target: Target, event_id: int, options: Options, seconds: float | None = None) -> wrk.Load:
    return await wrk.purchases(
        target.port,
        f"/api/flash/{event_id}/purchase",
        prefix=f"l{secrets.token_hex(3)}",
        connections=options.connections,
        seconds=options.hammer_seconds if seconds is None else seconds,
        host=target.host,
    )


async def _start_bare_asgi(options: Options, log_path: Path) -> ServerProcess:
    """The same uvicorn and workers running an app that only answers sold out."""
    server = await ServerProcess.start(
        dict(os.environ), port=free_port(), log_path=log_path, workers=options.workers, app=BARE_ASGI_APP
    )
    try:
        await server.wait_ready("/")
    except BaseException:
        await server.stop()
        raise
    return server


async def _late_buyers_and_bare(
    target: Target, bare: Target, event_id: int, options: Options
) -> tuple[wrk.Load, wrk.Load]:
    """The late buyers and the bare-ASGI baseline under the same load, in turns (`ALTERNATIONS` rounds)."""
    share = max(1.0, options.hammer_seconds / ALTERNATIONS)
    late: list[wrk.Load] = []
    baseline: list[wrk.Load] = []
    for _ in range(ALTERNATIONS):
        late.append(await _late_buyers(target, event_id, options, share))
        baseline.append(await _late_buyers(bare, event_id, options, share))
    return wrk.together(late), wrk.together(baseline)


@dataclass(frozen=True)
class Baselines:
    single: pgbench.Claims
    batched: pgbench.Claims


async def _pgbench(rt: Runtime, stage: Stage, options: Options) -> Baselines | None:
    """Both pgbench baselines on the run's own SKU; None on SQLite."""
    if not rt.db.is_postgresql:
        return None
    found = pgbench.find_pgbench()
    if found is None:
        raise RuntimeError(pgbench.MISSING)
    async with rt.db.read() as session:
        # The bench reads the code table itself, as pgbench writes it: the warehouse the baseline's codes went to.
        warehouse = (
            await session.execute(
                text("SELECT warehouse_id FROM inventory_codes WHERE sku_id = :sku LIMIT 1"),
                {"sku": stage.baseline_sku_id},
            )
        ).scalar_one()
    runs = []
    for batch, transactions in ((1, PGBENCH_SINGLE_PER_CLIENT), (pgbench.BATCH, PGBENCH_BATCHES_PER_CLIENT)):
        runs.append(
            await pgbench.claims(
                found,
                rt.db.url,
                sku_id=stage.baseline_sku_id,
                warehouse_id=warehouse,
                batch=batch,
                clients=options.pgbench_clients,
                transactions=transactions,
                tag=f"pgb{secrets.token_hex(4)}",
            )
        )
    return Baselines(*runs)


def baseline_units(rt: Runtime, options: Options) -> int:
    """Codes both pgbench runs claim, with a margin, so that neither runs dry (PostgreSQL only)."""
    if not rt.db.is_postgresql:
        return 0
    wanted = options.pgbench_clients * (PGBENCH_SINGLE_PER_CLIENT + PGBENCH_BATCHES_PER_CLIENT * pgbench.BATCH)
    return wanted + wanted // 10


def unavailable(options: Options) -> str | None:
    """Why these options cannot run (checked before anything is written), or None."""
    if options.url is None:
        return None
    try:
        Target.parse(options.url)
    except ValueError as exc:
        return str(exc)
    if options.compare_risk or options.workers != 1:
        return "--compare-risk and --workers are for the bench's own server, not one at --url"
    return None


def cpu_per_order(storm: Storm, sold: int) -> float | None:
    """The server's CPU over the storm per unit sold, in ms (None: not measured, or nothing sold)."""
    return round(1000 * storm.server_cpu_s / sold, 2) if storm.server_cpu_s is not None and sold else None


async def _wait_for_event(target: Target, event_id: int) -> None:
    """Until the server at `target` shows the event a few times in a row (each process behind a balancer)."""
    deadline = time.monotonic() + READY_AT_URL_S
    answered = 0
    while answered < READY_ANSWERS_AT_URL:
        if time.monotonic() > deadline:
            raise FlashBenchUnavailable(f"{target.url} did not show flash event {event_id} within {READY_AT_URL_S} s")
        answered = answered + 1 if await target.answers(f"/api/flash/{event_id}") else 0
        await asyncio.sleep(0.05)


async def run(rt: Runtime, options: Options, progress: Progress = quiet) -> dict[str, object]:
    """The storm, the late buyers and the baselines against `rt`'s database; the event is ended after."""
    wrk.require_wrk()
    if (reason := unavailable(options)) is not None:
        raise FlashBenchUnavailable(reason)
    external = Target.parse(options.url) if options.url is not None else None
    if external is not None and not await external.answers("/healthz"):
        raise FlashBenchUnavailable(f"nothing at {external.url} answers GET /healthz with 200")
    settings = rt.settings
    load_average = os.getloadavg()[0]
    raise_open_files_limit()
    progress(f"setting up {options.stock} codes for the sale and the baseline's codes …")
    stage = await set_up(rt, options.stock, baseline_units(rt, options))
    server: ServerProcess | None = None
    if external is None:
        # The bench's own server on loopback, for the bench's run: its flash purchases need a gateway to pay through.
        server = await ServerProcess.start(
            server_environment(settings, KAQUAN_DEV_GATEWAY="1"),
            port=free_port(),
            log_path=settings.var_dir / "bench-flash-server.log",
            workers=options.workers,
        )
        target = Target(HOST, server.port)
    else:
        target = external
    peak_rss_mb: float | None = None
    bare_server: ServerProcess | None = None
    bare: wrk.Load | None = None
    try:
        if server is not None:
            bare_server = await _start_bare_asgi(options, settings.var_dir / "bench-flash-bare.log")
            await server.wait_ready(f"/api/flash/{stage.event_id}")
        else:
            await _wait_for_event(target, stage.event_id)
        progress(f"the storm: {options.buyers} buyers over {options.connections} connections, {options.stock} codes …")
        storm = await _storm(rt, stage, target, options, server)
        if bare_server is not None:
            progress(f"late buyers and the bare-ASGI baseline in turns, {options.hammer_seconds:g} s each …")
            late, bare = await _late_buyers_and_bare(target, Target(HOST, bare_server.port), stage.event_id, options)
        else:
            progress(f"late buyers for {options.hammer_seconds:g} s …")
            late = await _late_buyers(target, stage.event_id, options)
        peak_rss_mb = server.peak_rss_mb() if server is not None else None
    finally:
        for process in (server, bare_server):
            if process is not None:
                await process.stop()
    risk_off = await _storm_without_risk(rt, options, progress) if options.compare_risk else None
    progress("the pgbench baselines …")
    baselines = await _pgbench(rt, stage, options)
    told = storm.order_numbers + late.order_numbers
    checked = await check(rt, stage, told)
    ended = await rt.flash.end_event(stage.event_id, actor="bench")
    async with rt.db.read() as session:
        after_end = await stock(session, sku_id=stage.sku_id)
    # Ending gives back exactly what was not sold, and the stock still adds up.
    adds_up = checked.stock_adds_up and ended.released + checked.sold == ended.allotted
    adds_up = adds_up and all(row.adds_up for row in after_end)
    orders_per_s = checked.sold / storm.last_commit_s if storm.last_commit_s else 0.0
    sold_out_per_s = late.sold_out / late.seconds if late.seconds else 0.0
    single = baselines.single.tps if baselines else None
    polls = storm.polls
    poll_p99 = polls.percentile_ms(0.99)
    summary: dict[str, object] = {
        "db": describe(rt.db.url),
        "gate": "redis" if settings.redis_url else "memory",
        "url": options.url,
        "workers": options.workers if external is None else None,
        "connections": options.connections,
        "load_average": round(load_average, 2),
        "stock": options.stock,
        "storm_buyers": storm.load.answers,
        "sold": checked.sold,
        "oversold": max(0, checked.sold - checked.allotted),
        "duplicate_codes": checked.duplicate_codes,
        "stock_adds_up": adds_up,
        "sold_out_answers_per_s": round(sold_out_per_s),
        "sold_out_p99_ms": round(late.p99_ms, 1),
        "sold_out_timeouts": late.timeouts,
        "bare_asgi_answers_per_s": round(bare.per_s) if bare else None,
        "bare_asgi_p99_ms": round(bare.p99_ms, 1) if bare else None,
        "bare_asgi_timeouts": bare.timeouts if bare else None,
        "ratio_vs_bare_asgi": (round(sold_out_per_s / bare.per_s, 2) if bare.per_s else 0.0) if bare else None,
        "storm_first_answer_p50_ms": round(storm.load.p50_ms, 1),
        "storm_first_answer_p99_ms": round(storm.load.p99_ms, 1),
        "storm_last_order_committed_s": round(storm.last_commit_s, 3),
        "orders_per_s": round(orders_per_s),
        "storm_server_cpu_ms_per_order": cpu_per_order(storm, checked.sold),
        "pgbench_single_claim_tps": round(single) if single is not None else None,
        "pgbench_batched_codes_per_s": round(baselines.batched.codes_per_s) if baselines else None,
        "ratio_vs_pgbench": round(orders_per_s / single, 2) if single else None,
        "won_answers": storm.load.won + late.won,
        "queued_answers": storm.load.queued + late.queued,
        "tickets_polled": polls.tickets,
        "ticket_polls": polls.polls,
        "ticket_poll_p99_ms": round(poll_p99, 1) if poll_p99 is not None else None,
        "won_by_ticket": polls.answers["won"],
        "ticket_answers": dict(polls.answers),
        "tickets_unanswered": polls.unanswered,
        "timeouts": storm.load.timeouts + late.timeouts,
        "socket_errors": storm.load.socket_errors + late.socket_errors + polls.errors,
        "errors_5xx": storm.load.errors_5xx + late.errors_5xx + polls.with_status(5),
        "errors_4xx": storm.load.errors_4xx + late.errors_4xx + polls.with_status(4),
        "max_rss_mb": round(peak_rss_mb, 1) if peak_rss_mb is not None else None,
    }
    if risk_off is not None:
        storm_off, sold_off = risk_off
        off_per_s = sold_off / storm_off.last_commit_s if storm_off.last_commit_s else 0.0
        summary["risk_off_orders_per_s"] = round(off_per_s)
        summary["risk_off_storm_first_answer_p99_ms"] = round(storm_off.load.p99_ms, 1)
        summary["risk_cost"] = round(1 - orders_per_s / off_per_s, 2) if off_per_s else None
    return summary
