"""`kaquan bench flash`: a flash sale over real HTTP against a real server process, then the hardware baseline.

The run sets up a SKU, its codes and a live event through the services, starts
the server as a subprocess on the same database (and Redis, when
`KAQUAN_REDIS_URL` is set), and opens one keep-alive connection per virtual
buyer. Every buyer then asks for one unit under a buyer id of its own (polling
its ticket when queued); once every buyer has an answer, the same connections
keep asking as late buyers for a few seconds, which measures how fast sold-out
answers come. The server is stopped and the database checked: nothing sold
beyond the allotment, no code held by two orders, stock adding up.

The baseline, measured in the same run on the same database: K = 2 × cores
connections each running one transaction per purchase (claim one code with the
product's `FOR UPDATE SKIP LOCKED` / `BEGIN IMMEDIATE` claim, insert the order,
hand the code to it) with no HTTP and no batching. `ratio_vs_raw_sql` above 1
means the whole HTTP path with group commit places orders faster than that.

The baseline is the one place the bench writes another module's table itself:
its orders are bare INSERTs on purpose, the least any purchase must write, with
none of the order service's rules. The checks afterwards only read, through the
functions of the modules that own the tables (`orders.checks.check_holdings`,
`inventory.stock.stock`, the event's counters).

The load generator is the harness's minimal HTTP/1.1 client (`HttpConnection`,
not httpx: see `kaquan.bench.harness`). The server runs the product's app
factory under uvicorn with its access log off; the per-IP throttle is raised,
since every virtual buyer comes from 127.0.0.1.

The event is created without buyer verification and with its per-address and
per-device limits lifted: every virtual buyer shares one address, and the run
measures the gate and the commit, not the verification of 1,000 contacts. Each
virtual buyer sends a device token of its own (`X-Device-Token`), as a client
without cookies does, so its retries and ticket polls are recognised as its own.
"""

import asyncio
import json
import os
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import insert

from kaquan.bench.harness import (
    HOST,
    HttpConnection,
    Progress,
    ProtocolError,
    Response,
    ServerProcess,
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
from kaquan.inventory import allocation, handouts, importing, stock
from kaquan.kit import clock
from kaquan.kit.db import Database, describe
from kaquan.orders import checks as order_checks
from kaquan.orders.models import Order
from kaquan.orders.service import new_number
from kaquan.runtime import Runtime
from kaquan.web.flash_api import DEVICE_HEADER

PRICE_MINOR = 990
# Pauses when the server gives no Retry-After: before polling a queued purchase's ticket again, before retrying a 5xx.
POLL_S = 0.25
RETRY_S = 0.25
UNCAPPED = 10_000_000  # the highest per-address and per-device limit an event takes


# The buyers ---------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What one phase of buyers was told, and how long each purchase request took."""

    latencies_ms: list[float] = field(default_factory=list)  # each purchase request (a 202 ends one)
    answer_ms: list[float] = field(default_factory=list)  # first request to final answer, tickets polled included
    won: list[str] = field(default_factory=list)  # order numbers
    last_won_at: float = 0.0
    sold_out: int = 0
    limit_reached: int = 0
    queued: int = 0  # purchases answered 202 (tickets polled)
    resubmitted: int = 0  # tickets the server no longer knew (a failed batch): the purchase sent again
    errors_5xx: int = 0
    broken: int = 0  # connection errors
    unanswered: int = 0  # still without a final answer at the deadline
    refused: Counter[str] = field(default_factory=Counter)  # other 4xx, by error code


class Buyers:
    """Virtual buyers of one event: each asks over the connection it is given."""

    def __init__(self, event_id: int) -> None:
        self.purchase_path = f"/api/flash/{event_id}/purchase"

    async def buy(self, connection: HttpConnection, buyer: str, request_id: str, tally: Tally, deadline: float) -> None:
        """Ask for one unit and follow the answer to its end: won, sold out, limit reached, or refused.

        As a polite client does: a queued purchase's ticket is polled and a 5xx retried after the
        Retry-After the server gave; a ticket the server no longer knows (its batch failed) means
        sending the purchase again. The same request id throughout: never bought twice.
        """
        body = json.dumps({"buyer": buyer, "quantity": 1, "request_id": request_id}).encode()
        device = {DEVICE_HEADER: secrets.token_urlsafe(32)}
        asked = time.perf_counter()
        ticket: str | None = None
        try:
            while True:
                started = time.perf_counter()
                if ticket is None:
                    answer = await connection.request("POST", self.purchase_path, body, device)
                    tally.latencies_ms.append((time.perf_counter() - started) * 1000)
                else:
                    answer = await connection.request("GET", ticket, headers=device)
                if answer.status >= 500:
                    tally.errors_5xx += 1
                else:
                    said = json.loads(answer.body)
                    if answer.status == 404 and ticket is not None and said["error"]["code"] == "ticket_not_found":
                        tally.resubmitted += 1
                        ticket = None
                        continue
                    if answer.status != 202:
                        break
                    if ticket is None:
                        tally.queued += 1
                    ticket = f"/api/flash/tickets/{said['ticket']}"
                if not await _wait(answer, POLL_S if ticket else RETRY_S, deadline):
                    tally.unanswered += 1
                    return
        except (OSError, asyncio.IncompleteReadError, ProtocolError, json.JSONDecodeError):
            tally.broken += 1
            return
        tally.answer_ms.append((time.perf_counter() - asked) * 1000)
        _record(tally, answer.status, said)


async def _wait(answer: Response, default_s: float, deadline: float) -> bool:
    """Sleep as long as the server asked (or `default_s`); False when that would pass the deadline."""
    pause = answer.retry_after if answer.retry_after is not None else default_s
    if time.perf_counter() + pause >= deadline:
        return False
    await asyncio.sleep(pause)
    return True


def _record(tally: Tally, status: int, answer: dict[str, Any]) -> None:
    if status != 200:
        tally.refused[answer.get("error", {}).get("code", str(status))] += 1
    elif answer["result"] == "won":
        tally.won.append(answer["order_no"])
        tally.last_won_at = time.perf_counter()
    elif answer["result"] == "sold_out":
        tally.sold_out += 1
    else:
        tally.limit_reached += 1


async def storm(buyers: Buyers, connections: list[HttpConnection], tag: str, seconds: float) -> tuple[Tally, float]:
    """Every buyer asks once, all at once; returns what they were told and when the storm began."""
    tally = Tally()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(buyers.buy(conn, f"{tag}-buyer-{n}", "1", tally, deadline) for n, conn in enumerate(connections))
    )
    return tally, started


async def hammer(buyers: Buyers, connections: list[HttpConnection], tag: str, seconds: float) -> tuple[Tally, float]:
    """Late buyers keep asking over every connection for `seconds`; returns their answers and the time taken."""
    tally = Tally()
    started = time.perf_counter()
    end = started + seconds

    async def late(slot: int, conn: HttpConnection) -> None:
        attempt = 0
        while time.perf_counter() < end:
            await buyers.buy(conn, f"{tag}-late-{slot}-{attempt}", "1", tally, end + 10)
            attempt += 1

    await asyncio.gather(*(late(slot, conn) for slot, conn in enumerate(connections)))
    return tally, time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (`share` in 0..1) of `values`; 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


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
            await importing.import_file(
                rt.db,
                session,
                rt.vault,
                sku,
                generated_file(units),
                importing.BatchMeta(supplier="bench"),
                actor="bench",
            )
            skus.append(sku)
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


async def raw_sql_claims_per_s(url: str, sku_id: int, claims: int, connections: int) -> float:
    """One transaction per purchase from `connections` connections: claim a code, insert its order, hand it over."""
    db = Database(url, pool_size=connections)
    try:
        async with db.read() as session:
            warehouses = await allocation.warehouse_order(session, None)
        numbers = iter(range(claims))
        done = 0

        async def buyer() -> None:
            nonlocal done
            for n in numbers:
                async with db.transaction() as session:
                    claimed = await allocation.claim_codes(db, session, sku_id, 1, warehouses=warehouses)
                    if not claimed:
                        return
                    now = clock.now()
                    order_id = (
                        await session.execute(
                            insert(Order)
                            .values(
                                number=new_number(),
                                channel="bench",
                                source="raw-sql",
                                idempotency_key=f"{sku_id}-{n}",  # the SKU is this run's own
                                request_hash=b"",
                                sku_id=sku_id,
                                quantity=1,
                                unit_price_minor=PRICE_MINOR,
                                total_minor=PRICE_MINOR,
                                currency="CNY",
                                status="pending_payment",
                                contact="",
                                created_at=now,
                                expires_at=now + timedelta(minutes=15),
                            )
                            .returning(Order.id)
                        )
                    ).scalar_one()
                    await handouts.hand_out(
                        session,
                        [handouts.Handout(order_id, tuple(claimed))],
                        source="available",
                        target="reserved",
                        hold_until=now + timedelta(minutes=15),
                    )
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(buyer() for _ in range(connections)))
        return done / (time.perf_counter() - started)
    finally:
        await db.dispose()


# The run ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    stock: int
    buyers: int
    seconds: float
    workers: int  # more than one needs Redis (a gate the processes share)
    hammer_seconds: float
    raw_claims: int


@dataclass(frozen=True)
class FlashRun:
    """What `run` measured: `summary` is the JSON line's fields; the late buyers' sold-out answers and time besides."""

    summary: dict[str, object]
    late_sold_out: int
    late_seconds: float


async def _open(count: int, port: int) -> list[HttpConnection]:
    connections = [HttpConnection(HOST, port) for _ in range(count)]
    for start in range(0, count, 100):  # a burst of connects larger than the listen backlog would be refused
        await asyncio.gather(*(conn.connect() for conn in connections[start : start + 100]))
    return connections


@dataclass(frozen=True)
class Sale:
    bought: Tally  # the buyers of the storm
    started: float  # when the storm began (perf_counter)
    late: Tally  # the late buyers
    late_seconds: float
    peak_rss_mb: float  # of the largest server process


async def _sale(stage: Stage, server: ServerProcess, options: Options, progress: Progress) -> Sale:
    """The storm, then the late buyers, over one connection per buyer."""
    buyers = Buyers(stage.event_id)
    connections = await _open(options.buyers, server.port)
    try:
        progress(f"{options.buyers} buyers at once for {options.stock} codes …")
        bought, started = await storm(buyers, connections, stage.tag, options.seconds)
        progress(f"late buyers for {options.hammer_seconds:g} s …")
        late, late_seconds = await hammer(buyers, connections, stage.tag, options.hammer_seconds)
        # A late buyer may still win a code a storm buyer could not take: it counts towards the sell-out.
        if late.won:
            bought.last_won_at = max(bought.last_won_at, late.last_won_at)
        return Sale(bought, started, late, late_seconds, server.peak_rss_mb())
    finally:
        for conn in connections:
            await conn.close()


async def run(rt: Runtime, options: Options, progress: Progress = quiet) -> FlashRun:
    """The sale against a server process on `rt`'s database, the baseline, the checks; the event is ended after."""
    settings = rt.settings
    raise_open_files_limit()
    connections = 2 * (os.cpu_count() or 1)
    progress(f"setting up {options.stock} codes for the sale and {options.raw_claims} for the baseline …")
    stage = await set_up(rt, options.stock, options.raw_claims)
    # The bench's own server on loopback, for the bench's run: its flash purchases need a gateway to pay through.
    server = await ServerProcess.start(
        server_environment(settings, KAQUAN_DEV_GATEWAY="1"),
        port=free_port(),
        log_path=settings.var_dir / "bench-flash-server.log",
        workers=options.workers,
    )
    try:
        await server.wait_ready(f"/api/flash/{stage.event_id}")
        sale = await _sale(stage, server, options, progress)
    finally:
        await server.stop()
    progress(f"the baseline: {options.raw_claims} claims, one transaction each, over {connections} connections …")
    raw_per_s = await raw_sql_claims_per_s(rt.db.url, stage.baseline_sku_id, options.raw_claims, connections)
    bought, late = sale.bought, sale.late
    checked = await check(rt, stage, bought.won + late.won)
    ended = await rt.flash.end_event(stage.event_id, actor="bench")
    async with rt.db.read() as session:
        after_end = await stock(session, sku_id=stage.sku_id)
    # Ending gives back exactly what was not sold, and the stock still adds up.
    adds_up = checked.stock_adds_up and ended.released + checked.sold == ended.allotted
    adds_up = adds_up and all(row.adds_up for row in after_end)
    won = len(bought.won) + len(late.won)
    sell_out_s = bought.last_won_at - sale.started if won else 0.0
    orders_per_s = won / sell_out_s if sell_out_s > 0 else 0.0
    latencies = bought.latencies_ms + late.latencies_ms
    summary: dict[str, object] = {
        "db": describe(rt.db.url),
        "gate": "redis" if settings.redis_url else "memory",
        "workers": options.workers,
        "buyers": options.buyers,
        "stock": options.stock,
        "sold": checked.sold,
        "oversold": max(0, checked.sold - checked.allotted),
        "duplicate_codes": checked.duplicate_codes,
        "stock_adds_up": adds_up,
        "orders_per_s": round(orders_per_s),
        "sold_out_answers_per_s": round(late.sold_out / sale.late_seconds) if sale.late_seconds else 0,
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "errors_5xx": bought.errors_5xx + late.errors_5xx,
        "max_rss_mb": round(sale.peak_rss_mb, 1),
        "raw_sql_claims_per_s": round(raw_per_s),
        "ratio_vs_raw_sql": round(orders_per_s / raw_per_s, 2) if raw_per_s else 0.0,
        "raw_sql_connections": connections,
        "sell_out_s": round(sell_out_s, 3),
        "storm_p99_ms": round(percentile(bought.latencies_ms, 0.99), 1),
        "storm_answer_p50_ms": round(percentile(bought.answer_ms, 0.50), 1),
        "storm_answer_p99_ms": round(percentile(bought.answer_ms, 0.99), 1),
        "late_p50_ms": round(percentile(late.latencies_ms, 0.50), 1),
        "late_p99_ms": round(percentile(late.latencies_ms, 0.99), 1),
        "won_answers": won,
        "queued_answers": bought.queued + late.queued,
        "resubmitted": bought.resubmitted + late.resubmitted,
        "unanswered": bought.unanswered + late.unanswered,
        "broken_connections": bought.broken + late.broken,
        "refused": dict(bought.refused + late.refused),
    }
    return FlashRun(summary, late.sold_out, sale.late_seconds)
