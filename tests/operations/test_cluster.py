"""The flash-sale, agent and shop paths hold their invariants on the multi-machine topology of deploy/cluster/.

One topology for the module, brought up by `deploy/cluster/up.sh` (~30 s): HAProxy in front of two
`kaquan serve` processes and a `kaquan worker`, a PostgreSQL primary with two streaming replicas, a six-node
Redis Cluster. Buyers and agents send every request through HAProxy, concurrently; the checks read the
primary: nothing oversold, no code twice, stock adds up. The read replica is checked for its bound: with
its replay paused, a stale-ok read moves to the primary within the bound and back once it caught up.

Runs when KAQUAN_TEST_CLUSTER=1 (.ci/run sets it); then HAProxy, PostgreSQL 15 and redis-server must be
installed, and a missing one fails the run rather than skipping it. The fault drills take minutes and
live in deploy/cluster/drill.py.
"""

import asyncio
import json
import os
import secrets
import shutil
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from tests.support.agents import given_agent, given_price
from tests.support.builders import given_sku_with_codes

from kaquan.bench import flash as flash_bench
from kaquan.bench import shop as shop_bench
from kaquan.bench.cluster import Topology
from kaquan.bench.harness import HOST, HttpConnection
from kaquan.client import ApiError, AsyncAgentClient
from kaquan.inventory.levels import stock
from kaquan.kit.db import Database
from kaquan.orders.checks import check_holdings
from kaquan.orders.models import Order
from kaquan.runtime import Runtime, start

pytestmark = [
    pytest.mark.skipif(os.environ.get("KAQUAN_TEST_CLUSTER") != "1", reason="runs with KAQUAN_TEST_CLUSTER=1"),
    pytest.mark.xdist_group("cluster"),  # one topology, on one xdist worker (`make test` runs --dist loadgroup)
]
SCRIPTS = Path(__file__).resolve().parents[2] / "deploy" / "cluster"
UNTHROTTLED = str(10**9)
DEV_SECRET = secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    for program in ("haproxy", "redis-server", "redis-cli", "/usr/lib/postgresql/15/bin/initdb"):
        if shutil.which(program) is None:
            raise RuntimeError(
                f"KAQUAN_TEST_CLUSTER=1 but {program} is missing (deploy/cluster/up.sh says what to install)"
            )
    directory = Path(tempfile.mkdtemp(prefix="kq-cluster-"))  # short: PostgreSQL's socket path has a length limit
    directory.rmdir()
    settings = {
        "KAQUAN_DEV_GATEWAY": "1",
        "KAQUAN_DEV_GATEWAY_SECRET": DEV_SECRET,
        "KAQUAN_RISK_ENABLED": "0",
        "KAQUAN_FLASH_PER_IP_PER_MINUTE": UNTHROTTLED,
        "KAQUAN_ORDERS_PER_IP_PER_HOUR": UNTHROTTLED,
        "KAQUAN_UNPAID_ORDERS_PER_CLIENT": UNTHROTTLED,
        "KAQUAN_UNPAID_UNITS_PER_CLIENT": UNTHROTTLED,
    }
    up = Topology.up(SCRIPTS, directory, serves=2, replicas=2, extra_settings=settings)
    yield up
    up.down()


@pytest.fixture
async def on_cluster(topology: Topology, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime in the test process on the topology's primary and Redis Cluster, for setting up and checking."""
    rt = await start(topology.settings(tmp_path))
    yield rt
    await rt.close()


def front(topology: Topology) -> str:
    return f"http://{HOST}:{topology.front}"


async def buy_one(connection: HttpConnection, event_id: int, buyer: str) -> dict[str, Any]:
    """One buyer asks for one unit and follows a queued purchase's ticket to its end, as a polite client does."""
    body = json.dumps({"buyer": buyer, "quantity": 1, "request_id": "1"}).encode()
    device = {"X-Device-Token": secrets.token_urlsafe(32)}
    answer = await connection.request("POST", f"/api/flash/{event_id}/purchase", body, device)
    while answer.status == 202:
        await asyncio.sleep(answer.retry_after or 0.05)
        ticket = json.loads(answer.body)["ticket"]
        answer = await connection.request("GET", f"/api/flash/tickets/{ticket}", headers=device)
    assert answer.status == 200, answer.body
    said: dict[str, Any] = json.loads(answer.body)
    return said


async def test_a_flash_sale_through_haproxy_sells_each_unit_once(topology: Topology, on_cluster: Runtime) -> None:
    stage = await flash_bench.set_up(on_cluster, stock_units=40, baseline_units=1)
    connections = [HttpConnection(HOST, topology.front) for _ in range(100)]

    answers = await asyncio.gather(
        *(buy_one(conn, stage.event_id, f"{stage.tag}-buyer-{n}") for n, conn in enumerate(connections))
    )
    won = [answer["order_no"] for answer in answers if answer["result"] == "won"]
    checked = await flash_bench.check(on_cluster, stage, won)

    assert len(won) == 40
    assert sum(answer["result"] == "sold_out" for answer in answers) == 60
    assert (checked.sold, checked.duplicate_codes, checked.stock_adds_up) == (40, 0, True)


async def test_agents_through_haproxy_never_get_a_code_twice(topology: Topology, on_cluster: Runtime) -> None:
    sku = await given_sku_with_codes(on_cluster, 30)
    await given_price(on_cluster, sku.code, 100)
    agents = [await given_agent(on_cluster, code=f"ag-{secrets.token_hex(3)}", deposit_minor=10_000) for _ in range(3)]
    clients = [AsyncAgentClient(front(topology), agent.key_id, agent.secret, timeout=60) for agent in agents]
    seen: Counter[str] = Counter()
    refused: Counter[str] = Counter()

    async def order(n: int) -> None:
        try:
            placed = await clients[n % len(clients)].place_order(f"o-{n}", sku.code, 1)
        except ApiError as error:
            refused[error.code] += 1
            return
        seen.update(code.secret for code in placed.codes)

    try:
        await asyncio.gather(*(order(n) for n in range(50)))
    finally:
        for client in clients:
            await client.aclose()
    async with on_cluster.db.read() as session:
        (level,) = await stock(session, sku_id=sku.id)

    assert sum(seen.values()) == 30 and len(seen) == 30
    assert refused == Counter(out_of_stock=20)
    assert level.adds_up and level.sold == 30 and level.available == 0


async def test_shop_buyers_through_haproxy_hold_pay_and_receive_each_code_once(
    topology: Topology, on_cluster: Runtime
) -> None:
    sku = await given_sku_with_codes(on_cluster, 20)
    async with httpx.AsyncClient(base_url=front(topology), timeout=60) as client:

        async def buy() -> httpx.Response:
            """As a polite client does: a 503 `busy` (a lock waited too long) is sent again, same key."""
            headers = {"Idempotency-Key": secrets.token_hex(8), "X-Client-Token": secrets.token_urlsafe(24)}
            while True:
                answer = await client.post("/api/orders", json={"sku": sku.code, "quantity": 1}, headers=headers)
                if answer.status_code != 503:
                    return answer
                await asyncio.sleep(float(answer.headers.get("retry-after", "1")))

        answers = await asyncio.gather(*(buy() for _ in range(40)))
        placed = [answer.json() for answer in answers if answer.status_code == 201]
        refused = Counter(answer.json()["error"]["code"] for answer in answers if answer.status_code != 201)
        gateway = on_cluster.dev_gateway
        for order in placed:  # the gateway tells kaquan each payment, through the load balancer too
            token = str(order["pay_url"]).rsplit("/", 1)[1]
            headers, body = gateway.notification(token, order["total_minor"], order["currency"], secrets.token_hex(6))
            paid = await client.post(f"/payments/{gateway.name}/notify", content=body, headers=headers)
            assert paid.status_code == 200, paid.text

    numbers = [order["number"] for order in placed]
    await _until_delivered(on_cluster, numbers)
    async with on_cluster.db.read() as session:
        unmatched = await check_holdings(on_cluster.db, session, source="shop")
        (level,) = await stock(session, sku_id=sku.id)

    assert len(placed) == 20 and refused == Counter(out_of_stock=20)
    assert unmatched == []
    assert level.adds_up and level.sold == 20 and level.available == 0 and level.reserved == 0


async def _until_delivered(rt: Runtime, numbers: list[str], timeout_s: float = 30) -> None:
    """The worker delivers paid orders from the outbox: wait for it, then fail naming what is left."""
    for _ in range(int(timeout_s * 10)):
        async with rt.db.read() as session:
            statuses = (await session.scalars(select(Order.status).where(Order.number.in_(numbers)))).all()
        if statuses and set(statuses) == {"delivered"}:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not all delivered: {Counter(statuses)}")


async def test_stale_ok_reads_leave_a_replica_past_its_bound_and_come_back(topology: Topology) -> None:
    env = topology.environment()
    db = Database(env["KAQUAN_DATABASE_URL"], read_url=env["KAQUAN_READ_DATABASE_URL"], read_max_lag_s=1.0)
    replica = Database(env["KAQUAN_READ_DATABASE_URL"])
    mark = f"m{secrets.token_hex(4)}"
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE IF NOT EXISTS drill_marks (mark text PRIMARY KEY)"))
        await _until_on_replica(db)

        async with replica.engine.connect() as conn:
            await conn.execute(text("SELECT pg_wal_replay_pause()"))
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO drill_marks VALUES (:mark)"), {"mark": mark})
        async with replica.read() as session:
            behind = await session.scalar(text("SELECT count(*) FROM drill_marks WHERE mark = :mark"), {"mark": mark})
        await asyncio.sleep(1.0)  # past the bound: the next measure finds the replica behind
        async with db.read(stale_ok=True) as session:
            on_standby = await session.scalar(text("SELECT pg_is_in_recovery()"))
            seen = await session.scalar(text("SELECT count(*) FROM drill_marks WHERE mark = :mark"), {"mark": mark})

        assert behind == 0  # the replica really is behind: a read there would miss the row
        assert (on_standby, seen) == (False, 1)

        async with replica.engine.connect() as conn:
            await conn.execute(text("SELECT pg_wal_replay_resume()"))
        await _until_on_replica(db)
    finally:
        async with replica.engine.connect() as conn:
            await conn.execute(text("SELECT pg_wal_replay_resume()"))
        await replica.dispose()
        await db.dispose()


async def _until_on_replica(db: Database, timeout_s: float = 10) -> None:
    for _ in range(int(timeout_s * 10)):
        async with db.read(stale_ok=True) as session:
            if await session.scalar(text("SELECT pg_is_in_recovery()")):
                return
        await asyncio.sleep(0.1)
    raise AssertionError("stale-ok reads never reached the replica")


async def test_both_replicas_stream_and_one_of_them_commits_synchronously(topology: Topology) -> None:
    primary = Database(f"postgresql://postgres@127.0.0.1:{topology.primary_port}/kaquan")
    try:
        async with primary.read() as session:
            rows = await session.execute(
                text("SELECT application_name, state, sync_state FROM pg_stat_replication ORDER BY application_name")
            )
            streaming = [tuple(row) for row in rows]
    finally:
        await primary.dispose()

    # With synchronous_standby_names = '*' one replica confirms every commit; the other stands by to take over.
    assert [(name, state) for name, state, _ in streaming] == [("replica1", "streaming"), ("replica2", "streaming")]
    assert sorted(sync for *_, sync in streaming) == ["potential", "sync"]
    assert f"host=127.0.0.1:{topology.replica_ports[1]}" in topology.environment()["KAQUAN_DATABASE_URL"]


def test_haproxy_sends_traffic_only_to_ready_serve_processes(topology: Topology) -> None:
    stats = httpx.get(f"http://{HOST}:{topology.base_port + 8}/;csv", timeout=10).text
    rows = [line.split(",") for line in stats.splitlines() if line.startswith("kaquan,serve-")]

    assert [(row[1], row[17]) for row in rows] == [("serve-1", "UP"), ("serve-2", "UP")]
    assert json.loads(httpx.get(front(topology) + "/readyz", timeout=10).text)["status"] == "ready"


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
async def test_the_shop_bench_drives_the_topology_through_haproxy(topology: Topology, on_cluster: Runtime) -> None:
    # `kaquan bench shop --url`: no server of its own; wrk's buyers order, pay and look up through HAProxy.
    options = shop_bench.Options(codes=8, buyers=4, seconds=30, raw_connections=2, url=front(topology))

    result = await shop_bench.run(on_cluster, options)

    assert (result["delivered"], result["oversold"], result["duplicate_codes"]) == (8, 0, 0)
    assert result["all_delivered"] is True and result["stock_adds_up"] is True
    assert (result["url"], result["workers"], result["max_rss_mb"]) == (front(topology), None, None)
    assert result["errors_5xx"] == 0
