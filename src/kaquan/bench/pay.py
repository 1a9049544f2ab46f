"""`kaquan bench pay`: provider notifications processed per second, end to end, against a provider's simulator.

Setup (not timed): a SKU with one code per notification, an unpaid order and a
payment per code, each payment's trade opened at the simulated provider
(`payments.choose`, the provider's real protocol), then every trade paid at
the provider with its notification captured as the provider sent it. Timed:
each captured notification goes through `payments.notifications.receive`, the
path `/payments/{gateway}/notify` takes (verify the provider's signature, mark
paid, allocate the held codes, deliver, book the sale), `in_flight` at a time.
Beside it, in the same run, the raw cost of the signature check alone (the
adapter's `verify` over the same notifications, one after another). The run
ends by checking that every order was delivered exactly once.
"""

import asyncio
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import httpx

from kaquan.bench.harness import Progress, generated_file, quiet
from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductCreate, SkuCreate
from kaquan.inventory import importing
from kaquan.kit.db import describe
from kaquan.orders import service as orders
from kaquan.payments import notifications, registry
from kaquan.payments import service as payments
from kaquan.payments.gateway import Gateway
from kaquan.payments.plugins import GatewaySetup, load_plugins
from kaquan.runtime import Runtime

PRICE_MINOR = 1990
SETUP_BATCH = 200
SETUP_IN_FLIGHT = 16


@dataclass(frozen=True)
class Options:
    notifications: int = 2000
    in_flight: int = 32
    gateway: str = "alipay"


@dataclass(frozen=True)
class Captured:
    headers: dict[str, str]
    body: bytes


class Capture:
    """kaquan's notify URL as the simulator sees it during setup: it keeps what the provider sent and says "taken"."""

    def __init__(self, gateway: Gateway) -> None:
        self.sent: list[Captured] = []
        self._gateway = gateway

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(Captured(dict(request.headers), request.content))
        ack = self._gateway.acknowledge(None)
        return httpx.Response(ack.status_code, content=ack.body, headers={"content-type": ack.media_type})


async def run(rt: Runtime, options: Options, progress: Progress = quiet) -> dict[str, object]:
    plugin = next((p for p in load_plugins() if p.name == options.gateway), None)
    if plugin is None:
        raise SystemExit(f"no gateway plugin {options.gateway!r}; installed: {[p.name for p in load_plugins()]}")
    capture_to: list[Capture] = []
    setup = GatewaySetup(
        settings=rt.settings,
        public_url=rt.settings.public_url,
        state_dir=rt.settings.var_dir / "bench-gateways",
        notify_transport=httpx.MockTransport(lambda request: capture_to[0].handle(request)),
    )
    simulation = plugin.simulated(setup)
    gateway = simulation.gateway
    capture_to.append(Capture(gateway))
    registry.configure([gateway], public_url=rt.settings.public_url)

    progress(f"setting up {options.notifications} orders with trades open at the simulated {gateway.name} …")
    numbers, tokens = await _orders(rt, gateway, options.notifications)
    await _bounded([_open_trade(rt, token, gateway) for token in tokens], SETUP_IN_FLIGHT)
    for token in tokens:
        await simulation.provider.pay(token)
    await simulation.provider.drain()
    captured = capture_to[0].sent
    progress(f"captured {len(captured)} signed notifications; verifying signatures alone …")

    started = time.perf_counter()
    for note in captured:
        gateway.verify(note.headers, note.body)
    verify_s = time.perf_counter() - started

    progress(f"processing them, {options.in_flight} in flight …")
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []

    async def one(note: Captured) -> None:
        began = time.perf_counter()
        try:
            receipt = await notifications.receive(rt.db, gateway, note.headers, note.body)
            outcomes[receipt.outcome] += 1
        except Exception as exc:  # counted and reported: a benchmark run must say what failed, not stop
            outcomes[f"error:{type(exc).__name__}"] += 1
        latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    await _bounded([one(note) for note in captured], options.in_flight)
    seconds = time.perf_counter() - started

    delivered = await _delivered(rt, numbers)
    latencies.sort()
    return {
        "benchmark": "pay",
        "gateway": gateway.name,
        "database": describe(rt.settings.resolved_database_url()),
        "notifications": len(captured),
        "in_flight": options.in_flight,
        "outcomes": dict(outcomes),
        "delivered_orders": delivered,
        "all_delivered_once": delivered == len(numbers) and outcomes.get("delivered", 0) == len(numbers),
        "seconds": round(seconds, 2),
        "notifications_per_s": round(len(captured) / seconds) if seconds else 0,
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else 0,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1) if latencies else 0,
        "verify_only_per_s": round(len(captured) / verify_s) if verify_s else 0,
    }


async def _bounded(jobs: list[Coroutine[Any, Any, None]], in_flight: int) -> None:
    gate = asyncio.Semaphore(in_flight)

    async def guarded(job: Coroutine[Any, Any, None]) -> None:
        async with gate:
            await job

    await asyncio.gather(*(guarded(job) for job in jobs))


async def _orders(rt: Runtime, gateway: Gateway, count: int) -> tuple[list[str], list[str]]:
    tag = f"BENCH-PAY-{int(time.time())}-{secrets.token_hex(2)}".upper()
    async with rt.db.transaction() as session:
        product = await catalog.create_product(session, ProductCreate(name=tag, kind="voucher"), actor="bench")
        sku = await catalog.create_sku(
            session,
            SkuCreate(
                product_id=product.id,
                code=tag,
                name=tag,
                face_value_minor=PRICE_MINOR,
                price_minor=PRICE_MINOR,
                max_per_order=1,
            ),
            actor="bench",
        )
        await importing.import_file(
            rt.db, session, rt.vault, sku, generated_file(count), importing.BatchMeta(supplier="bench"), actor="bench"
        )
    numbers: list[str] = []
    tokens: list[str] = []
    for first in range(0, count, SETUP_BATCH):
        async with rt.db.transaction() as session:
            for n in range(first, min(first + SETUP_BATCH, count)):
                placed = await orders.place(
                    rt.db,
                    session,
                    rt.order_keys,
                    orders.OrderRequest(sku=sku.id, quantity=1, idempotency_key=f"{tag}-{n}", client_token=f"{n:022d}"),
                    max_per_order=1,
                    hold_minutes=60,
                )
                payment = await payments.start(session, gateway, placed.order)
                numbers.append(placed.order.number)
                tokens.append(payment.token)
    return numbers, tokens


async def _open_trade(rt: Runtime, token: str, gateway: Gateway) -> None:
    method = "qr" if "qr" in gateway.methods else gateway.methods[0]
    await payments.choose(
        rt.db,
        token,
        f"{gateway.name}:{method}",
        public_url=rt.settings.public_url,
        payer=payments.Payer(client_ip="203.0.113.7", payer_id="bench-openid"),
    )


async def _delivered(rt: Runtime, numbers: list[str]) -> int:
    async with rt.db.read() as session:
        return await orders.count_delivered(session, numbers)
