"""`kaquan bench agent`: signed open-API orders from one hot agent, then from many agents.

By default the server runs as `kaquan serve --workers 2` would (uvicorn
processes on a local port, on the same database and Redis), apart from the
load generator, which signs every request with the SDK and decrypts every code
it gets; `--workers 0` puts the app in this process instead (httpx's ASGI
transport, no sockets). The run ends by checking that no code came back twice,
that the ledger balances and that no agent's balance ever dipped below minus
its limit.
"""

import asyncio
import contextlib
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from kaquan import ledger
from kaquan.bench.goods import stocked_sku
from kaquan.bench.harness import HOST, Progress, ServerProcess, free_port, quiet, server_environment
from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductCreate
from kaquan.channels import agents
from kaquan.channels import pricing as channels
from kaquan.client import ApiError, AsyncAgentClient, NewOrder, Order
from kaquan.kit.db import describe
from kaquan.runtime import Runtime
from kaquan.web.app import create_app

PRICE_MINOR = 100


@dataclass
class Phase:
    name: str
    orders: int = 0
    refused: int = 0
    seconds: float = 0.0

    @property
    def per_s(self) -> float:
        return self.orders / self.seconds if self.seconds else 0.0


async def _setup(
    rt: Runtime, codes: int, agent_count: int, hot_orders: int, many_orders: int
) -> tuple[str, list[agents.IssuedKey]]:
    tag = f"BENCH-AGENT-{int(time.time())}-{secrets.token_hex(2)}".upper()
    async with rt.db.transaction() as session:
        product = await catalog.create_product(session, ProductCreate(name=tag, kind="voucher"), actor="bench")
        await stocked_sku(
            rt, session, product_id=product.id, code=tag, price_minor=PRICE_MINOR, codes=codes, actor="bench"
        )
        await channels.set_price(rt.db, session, "api", tag, PRICE_MINOR, actor="bench")
        keys = []
        for n in range(agent_count + 1):
            # Agent 0 is the hot one; each of the many others can afford five orders less than its share,
            # its credit limit included, so every one of them runs into its floor.
            share = many_orders // agent_count
            deposit = hot_orders * PRICE_MINOR if n == 0 else max(share - 10, 0) * PRICE_MINOR
            agent = await agents.create_agent(
                rt.db,
                session,
                code=f"{tag.lower()}-{n}",
                name=f"bench agent {n}",
                currency="CNY",
                credit_limit_minor=0 if n == 0 else 5 * PRICE_MINOR,
                actor="bench",
            )
            if deposit:
                await agents.top_up(rt.db, session, agent.id, deposit, reference="bench", actor="bench")
            keys.append(await agents.issue_key(rt.db, session, rt.keyring, agent.id, ip_allowlist=[], actor="bench"))
    return tag, keys


async def _drive(
    phase: Phase,
    clients: list[AsyncAgentClient],
    sku: str,
    total: int,
    *,
    batch: int,
    in_flight: int,
    seen: Counter[str],
) -> None:
    """`total` orders of one unit each, `batch` per signed request, `in_flight` requests at a time."""
    numbers = iter(range(0, total, batch))

    def count(answer: Order | ApiError) -> None:
        if isinstance(answer, ApiError):
            if answer.code not in ("insufficient_balance", "out_of_stock"):
                raise answer
            phase.refused += 1
            return
        phase.orders += 1
        seen.update(code.secret for code in answer.codes)

    async def sender() -> None:
        for first in numbers:
            client = clients[(first // batch) % len(clients)]  # the agents take turns, batch by batch
            names = [f"{phase.name}-{n}" for n in range(first, min(first + batch, total))]
            if batch == 1:
                try:
                    count(await client.place_order(names[0], sku, 1))
                except ApiError as refused:
                    count(refused)
                continue
            for answer in await client.place_orders([NewOrder(name, sku, 1) for name in names]):
                count(answer)

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(in_flight)))
    phase.seconds = time.perf_counter() - started


async def _never_below_floor(rt: Runtime, account_ids: list[int]) -> bool:
    async with rt.db.read() as session:
        return not await ledger.check_floors(session, account_ids)


@contextlib.asynccontextmanager
async def _server(rt: Runtime, workers: int) -> AsyncIterator[tuple[str, httpx.AsyncBaseTransport | None]]:
    """Where the agents send their requests: `workers` server processes, or (0) the app in this process."""
    if not workers:
        yield "http://bench.local", httpx.ASGITransport(app=create_app(rt=rt))
        return
    settings = rt.settings
    server = await ServerProcess.start(
        server_environment(settings),
        port=free_port(),
        log_path=settings.var_dir / "bench-agent-server.log",
        workers=workers,
    )
    try:
        await server.wait_ready("/")
        yield f"http://{HOST}:{server.port}", None
    finally:
        await server.stop()


@dataclass(frozen=True)
class Options:
    hot_orders: int
    single_orders: int
    many_orders: int
    agent_count: int
    batch: int
    in_flight: int
    single_in_flight: int
    workers: int


@dataclass(frozen=True)
class AgentRun:
    """What `run` measured: each phase, and `summary`, the JSON line's fields."""

    phases: list[Phase]
    summary: dict[str, object]


async def run(rt: Runtime, options: Options, progress: Progress = quiet) -> AgentRun:
    """Set up the agents and their stock, run the three phases, check codes, ledger and floors."""
    total = options.hot_orders + options.many_orders
    progress(f"setting up {total} codes and {options.agent_count + 1} agents …")
    sku, keys = await _setup(rt, total, options.agent_count, options.hot_orders, options.many_orders)
    async with _server(rt, options.workers) as (base_url, transport):
        clients = [AsyncAgentClient(base_url, key.key_id, key.secret, transport=transport, timeout=120) for key in keys]
        try:
            phases, seen = await _phases(clients, sku, options, progress)
        finally:
            for client in clients:
                await client.aclose()
    single, hot, many = phases
    async with rt.db.read() as session:
        balanced = (await ledger.check(session)).ok
        accounts = [(await agents.get_agent(session, key.agent_id)).account_id for key in keys]
    summary: dict[str, object] = {
        "db": describe(rt.db.url),
        "nonces": "redis" if rt.redis is not None else "database",
        "server_processes": options.workers,
        "orders_per_request": options.batch,
        "hot_agent_orders_per_s": round(hot.per_s),
        "hot_agent_one_order_per_request_per_s": round(single.per_s),
        "many_agents_orders_per_s": round(many.per_s),
        "orders": single.orders + hot.orders + many.orders,
        "refused": single.refused + hot.refused + many.refused,
        "duplicate_codes": sum(count - 1 for count in seen.values() if count > 1),
        "ledger_balanced": balanced,
        "balance_never_below_limit": await _never_below_floor(rt, accounts),
    }
    return AgentRun(phases, summary)


async def _phases(
    clients: list[AsyncAgentClient], sku: str, options: Options, progress: Progress
) -> tuple[list[Phase], Counter[str]]:
    """The hot agent one order per request, then batched; then the many agents batched."""
    seen: Counter[str] = Counter()
    single, hot, many = Phase("single"), Phase("hot"), Phase("many")
    single_count = min(options.single_orders, options.hot_orders - 1)
    batched = options.hot_orders - single_count
    progress(f"hot agent: {single_count} orders one per request, {options.single_in_flight} in flight …")
    await _drive(single, clients[:1], sku, single_count, batch=1, in_flight=options.single_in_flight, seen=seen)
    progress(f"hot agent: {batched} orders, {options.batch} per request …")
    await _drive(hot, clients[:1], sku, batched, batch=options.batch, in_flight=options.in_flight, seen=seen)
    progress(f"{options.agent_count} agents: {options.many_orders} orders, {options.batch} per request …")
    await _drive(
        many, clients[1:], sku, options.many_orders, batch=options.batch, in_flight=options.in_flight, seen=seen
    )
    return [single, hot, many], seen
