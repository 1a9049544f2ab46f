"""Fault drills on the topology of deploy/cluster/up.sh: break one part mid-sale, say what buyers saw and for how long.

    KAQUAN_CLUSTER_SETTINGS=... deploy/cluster/up.sh      # see docs/operations.md for the settings the drills use
    PYTHONPATH=src python deploy/cluster/drill.py [serve postgres-restart redis-node worker failover]

Every drill runs the same load through HAProxy: `CLIENTS` buyers, each placing shop orders (POST /api/orders)
and flash-sale purchases (POST /api/flash/<id>/purchase) one after another, and records each answer with its
time. A fault is injected DURING_S seconds into the drill and the load goes on for LOAD_S seconds in all. The
drill prints, as one JSON line: the answers by kind, the window from the first to the last failed answer
(`disturbed_s`), the longest stretch without one successful answer (`longest_gap_s`), and the invariants read
from the database afterwards (no unit sold twice, stock adds up, every paid order delivered once).

`failover` is last on purpose: it promotes the replica, after which the topology has no replica (down.sh,
up.sh to get one again). The drills are minutes long, so they are a script, not part of the test suite.
"""

import asyncio
import itertools
import json
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from kaquan.bench import flash as flash_bench
from kaquan.bench.cluster import Topology
from kaquan.bench.harness import HOST, HttpConnection, ProtocolError, generated_file
from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductCreate, SkuCreate
from kaquan.flashsale import committer
from kaquan.inventory import importing
from kaquan.inventory.levels import stock
from kaquan.kit.outbox import OutboxEvent
from kaquan.orders.checks import check_holdings
from kaquan.orders.models import Order
from kaquan.runtime import Runtime, start
from kaquan.web.flash_api import DEVICE_HEADER

CLIENTS = 16
LOAD_S = 40.0
DURING_S = 8.0
SHOP_STOCK = 100_000
FLASH_STOCK = 100_000
OK = {200, 201, 202, 409}  # 409: sold out or limit reached, an honest answer


def _ok(outcome: str) -> bool:
    return outcome.isdigit() and int(outcome) in OK


@dataclass
class Answers:
    started: float = field(default_factory=time.monotonic)
    seen: list[tuple[float, str, str]] = field(default_factory=list)  # (seconds since start, path kind, outcome)
    paid: list[str] = field(default_factory=list)

    def record(self, kind: str, outcome: str) -> None:
        self.seen.append((time.monotonic() - self.started, kind, outcome))

    def summary(self, fault_at: float) -> dict[str, Any]:
        """Answers before the fault are the baseline (a loaded machine sheds some load with 503 busy too)."""
        failed = [at for at, _, outcome in self.seen if not _ok(outcome)]
        after = [at for at in failed if at >= fault_at]
        good = sorted(at for at, _, outcome in self.seen if _ok(outcome) and at >= fault_at)
        gaps = [b - a for a, b in itertools.pairwise([fault_at, *good])]
        return {
            "answers_before": dict(Counter(f"{k} {o}" for at, k, o in self.seen if at < fault_at)),
            "answers_after": dict(Counter(f"{k} {o}" for at, k, o in self.seen if at >= fault_at)),
            "failed_before_fault": len(failed) - len(after),
            "failed_after_fault": len(after),
            "fault_at_s": round(fault_at, 2),
            "failures_from_s": round(min(after) - fault_at, 2) if after else None,
            "failures_until_s": round(max(after) - fault_at, 2) if after else None,
            "longest_gap_s": round(max(gaps), 2) if gaps else None,
            "failed_by_second_after_fault": dict(sorted(Counter(int(at - fault_at) for at in after).items())),
        }


async def buyer(topology: Topology, sku: str, event_id: int, answers: Answers, until: float) -> None:
    connection = HttpConnection(HOST, topology.front)
    token = secrets.token_urlsafe(24)
    device = secrets.token_urlsafe(32)
    while time.monotonic() < until:
        shop = json.dumps({"sku": sku, "quantity": 1}).encode()
        headers = {"Idempotency-Key": secrets.token_hex(8), "X-Client-Token": token}
        await _ask(connection, answers, "shop", "/api/orders", shop, headers)
        flash = json.dumps({"buyer": secrets.token_hex(6), "quantity": 1, "request_id": "1"}).encode()
        headers = {DEVICE_HEADER: device}
        await _ask(connection, answers, "flash", f"/api/flash/{event_id}/purchase", flash, headers)
        await asyncio.sleep(0.05)


async def _ask(
    connection: HttpConnection, answers: Answers, kind: str, path: str, body: bytes, headers: dict[str, str]
) -> None:
    try:
        answer = await asyncio.wait_for(connection.request("POST", path, body, headers), timeout=30)
    except (OSError, asyncio.IncompleteReadError, ProtocolError, TimeoutError) as exc:
        answers.record(kind, type(exc).__name__)
        await connection.close()  # the next request opens a new connection
        await asyncio.sleep(0.2)
        return
    answers.record(kind, str(answer.status) if answer.status in OK else f"{answer.status} {_code(answer.body)}")
    if kind == "shop" and answer.status == 201:
        order = json.loads(answer.body)
        answers.paid.append(order["pay_url"].rsplit("/", 1)[1] + " " + order["number"])


def _code(body: bytes) -> str:
    """The error's machine-readable code (HAProxy's own 502/503 pages carry none)."""
    try:
        return str(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "haproxy"


async def pay_all(rt: Runtime, topology: Topology, answers: Answers) -> list[str]:
    """Pay every shop order through HAProxy as the dev gateway would; the worker then delivers them."""
    connection = HttpConnection(HOST, topology.front)
    gateway = rt.dev_gateway
    numbers = []
    for entry in answers.paid:
        token, number = entry.split()
        headers, body = gateway.notification(token, 100, "CNY", secrets.token_hex(6))
        for _ in range(50):
            try:
                said = await connection.request("POST", f"/payments/{gateway.name}/notify", body, headers)
            except (OSError, asyncio.IncompleteReadError, ProtocolError):
                await connection.close()
                await asyncio.sleep(0.2)
                continue
            if said.status == 200:
                break
            await asyncio.sleep(0.2)
        numbers.append(number)
    return numbers


async def invariants(rt: Runtime, stage: flash_bench.Stage, shop_sku_id: int, numbers: list[str]) -> dict[str, Any]:
    """Read back from the primary once the dust settled: what the drill promises nothing broke."""
    settling = time.monotonic()
    for _ in range(600):  # every paid order delivered and the outbox (notices, cost of goods, …) worked off
        async with rt.db.read() as session:
            waiting = await session.scalar(
                select(func.count()).where(Order.number.in_(numbers), Order.status != "delivered")
            )
            pending_events = await session.scalar(
                select(func.count()).where(OutboxEvent.done_at.is_(None), OutboxEvent.failed_at.is_(None))
            )
        if not waiting and not pending_events:
            break
        await asyncio.sleep(0.1)
    settled_s = time.monotonic() - settling
    won = await _won_orders(rt, stage)
    checked = await flash_bench.check(rt, stage, won)
    async with rt.db.read() as session:
        unmatched = await check_holdings(rt.db, session, source="shop")
        (level,) = await stock(session, sku_id=shop_sku_id)
        waited = await session.scalar(
            select(func.max(Order.delivered_at - Order.paid_at)).where(Order.number.in_(numbers))
        )
    return {
        "flash_sold": checked.sold,
        "flash_duplicate_codes": checked.duplicate_codes,
        "flash_stock_adds_up": checked.stock_adds_up,
        "shop_orders_paid": len(numbers),
        "shop_paid_not_delivered": waiting,
        "shop_longest_wait_paid_to_delivered_s": round(waited.total_seconds(), 2) if waited else None,
        "shop_orders_holding_wrong_units": len(unmatched),
        "shop_stock_adds_up": level.adds_up,
        "outbox_pending": pending_events,
        "settled_after_load_s": round(settled_s, 2),
    }


async def _won_orders(rt: Runtime, stage: flash_bench.Stage) -> list[str]:
    async with rt.db.read() as session:
        rows = await session.scalars(select(Order.number).where(Order.source == committer.source_of(stage.event_id)))
        return list(rows.all())


Fault = Callable[[Topology, Answers], Awaitable[dict[str, Any]]]


async def kill_serve(topology: Topology, answers: Answers) -> dict[str, Any]:
    topology.kill("serve-1")
    await asyncio.sleep(10)
    topology.start("serve-1")
    return {"did": "kill -9 serve-1; started again 10 s later"}


async def restart_postgres(topology: Topology, answers: Answers) -> dict[str, Any]:
    started = time.monotonic()
    await asyncio.to_thread(topology.pg_ctl, "pg-primary", "restart", "-m", "fast", "-w")
    return {"did": "pg_ctl restart -m fast on the primary", "restart_took_s": round(time.monotonic() - started, 2)}


async def lose_redis_node(topology: Topology, answers: Answers) -> dict[str, Any]:
    victim = topology.redis_primaries()[0]
    pid = int(topology.redis_cli(victim, "info", "server").split("process_id:")[1].split()[0])
    os.kill(pid, 9)
    witness = next(port for port in topology.redis_ports if port != victim)

    def promoted() -> bool:
        """The witness names three primaries again, the victim not among them (its replica took its slots)."""
        primaries = [
            line.split()
            for line in topology.redis_cli(witness, "cluster", "nodes").splitlines()
            if "master" in line.split()[2] and "fail" not in line.split()[2]
        ]
        return len(primaries) == 3 and all(f":{victim}@" not in fields[1] for fields in primaries)

    took = await asyncio.to_thread(topology.wait_until, promoted)
    return {
        "did": f"kill -9 the Redis primary on {victim}; its replica took over",
        "replica_promoted_after_s": round(took, 2),
    }


async def kill_worker(topology: Topology, answers: Answers) -> dict[str, Any]:
    topology.kill("worker")
    await asyncio.sleep(10)
    topology.start("worker")
    return {"did": "kill -9 the worker mid-batch; started again 10 s later"}


async def fail_over(topology: Topology, answers: Answers) -> dict[str, Any]:
    started = time.monotonic()
    await asyncio.to_thread(topology.pg_ctl, "pg-primary", "stop", "-m", "immediate")
    lost_at = time.monotonic()
    await asyncio.sleep(5)  # an operator notices and decides (the drill's stand-in for a pager and a human)
    await asyncio.to_thread(topology.pg_ctl, "pg-replica", "promote", "-w")
    return {
        "did": "pg_ctl stop -m immediate on the primary; 5 s later pg_ctl promote on the replica",
        "promoted_after_s": round(time.monotonic() - lost_at, 2),
        "stop_took_s": round(lost_at - started, 2),
    }


DRILLS: dict[str, Fault] = {
    "serve": kill_serve,
    "postgres-restart": restart_postgres,
    "redis-node": lose_redis_node,
    "worker": kill_worker,
    "failover": fail_over,
}


async def drill(topology: Topology, name: str, var_dir: Path) -> dict[str, Any]:
    rt = await start(topology.settings(var_dir))
    try:
        stage = await flash_bench.set_up(rt, FLASH_STOCK, 1)
        shop_sku = await _shop_sku(rt)
    finally:
        await rt.close()
    answers = Answers()
    until = time.monotonic() + LOAD_S
    load = [asyncio.create_task(buyer(topology, shop_sku[1], stage.event_id, answers, until)) for _ in range(CLIENTS)]
    await asyncio.sleep(DURING_S)
    fault_at = time.monotonic() - answers.started
    did = await DRILLS[name](topology, answers) if name != "worker" else {}
    await asyncio.gather(*load)
    rt = await start(topology.settings(var_dir))
    try:
        paying = asyncio.create_task(pay_all(rt, topology, answers))
        if name == "worker":  # the worker dies while it delivers the orders being paid
            await asyncio.sleep(2)
            did = await kill_worker(topology, answers)
        numbers = await paying
        checked = await invariants(rt, stage, shop_sku[0], numbers)
    finally:
        await rt.close()
    return {"drill": name, **did, **answers.summary(fault_at), **checked}


async def _shop_sku(rt: Runtime) -> tuple[int, str]:
    code = f"DRILL-{secrets.token_hex(3).upper()}"
    async with rt.db.transaction() as session:
        product = await catalog.create_product(session, ProductCreate(name=code, kind="voucher"), actor="drill")
        sku = await catalog.create_sku(
            session,
            SkuCreate(product_id=product.id, code=code, name=code, face_value_minor=100, price_minor=100),
            actor="drill",
        )
        await importing.import_file(
            rt.db,
            session,
            rt.vault,
            sku,
            generated_file(SHOP_STOCK),
            importing.BatchMeta(supplier="drill"),
            actor="drill",
        )
    return sku.id, code


def main() -> None:
    directory = Path(os.environ.get("KAQUAN_CLUSTER_DIR", "/tmp/kaquan-cluster"))  # noqa: S108 - up.sh's default
    topology = Topology(
        directory,
        int(os.environ.get("KAQUAN_CLUSTER_PORT", "7400")),
        int(os.environ.get("KAQUAN_SERVES", "2")),
        Path(__file__).parent,
        int(os.environ.get("KAQUAN_REPLICAS", "1")),
    )
    names = sys.argv[1:] or list(DRILLS)
    for name in names:
        with tempfile.TemporaryDirectory() as var_dir:
            print(json.dumps(asyncio.run(drill(topology, name, Path(var_dir)))), flush=True)


if __name__ == "__main__":
    main()
