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
import json
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import httpx
import typer
from rich.table import Table

from kaquan import ledger
from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductCreate, SkuCreate
from kaquan.channels import agents
from kaquan.channels import service as channels
from kaquan.cli.bench_flash import HOST, ServerProcess, free_port, server_environment
from kaquan.cli.common import console, run
from kaquan.client import ApiError, AsyncAgentClient, NewOrder, Order
from kaquan.inventory import importing
from kaquan.kit.config import get_settings
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
    from kaquan.cli.bench import generated_file

    tag = f"BENCH-AGENT-{int(time.time())}-{secrets.token_hex(2)}".upper()
    async with rt.db.transaction() as session:
        product = await catalog.create_product(session, ProductCreate(name=tag, kind="voucher"), actor="bench")
        sku = await catalog.create_sku(
            session,
            SkuCreate(product_id=product.id, code=tag, name=tag, face_value_minor=PRICE_MINOR, price_minor=PRICE_MINOR),
            actor="bench",
        )
        await importing.import_file(
            rt.db, session, rt.vault, sku, generated_file(codes), importing.BatchMeta(supplier="bench"), actor="bench"
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
    settings = get_settings()
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


async def bench_run(rt: Runtime, options: Options) -> dict[str, object]:
    total = options.hot_orders + options.many_orders
    console.print(f"setting up {total} codes and {options.agent_count + 1} agents …")
    sku, keys = await _setup(rt, total, options.agent_count, options.hot_orders, options.many_orders)
    async with _server(rt, options.workers) as (base_url, transport):
        clients = [AsyncAgentClient(base_url, key.key_id, key.secret, transport=transport, timeout=120) for key in keys]
        try:
            phases, seen = await _phases(clients, sku, options)
        finally:
            for client in clients:
                await client.aclose()
    single, hot, many = phases
    async with rt.db.read() as session:
        balanced = (await ledger.check(session)).ok
        accounts = [(await agents.get_agent(session, key.agent_id)).account_id for key in keys]
    table = Table("phase", "orders", "refused", "seconds", "orders/s")
    for phase in phases:
        table.add_row(phase.name, str(phase.orders), str(phase.refused), f"{phase.seconds:.2f}", f"{phase.per_s:.0f}")
    console.print(table)
    return {
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


async def _phases(clients: list[AsyncAgentClient], sku: str, options: Options) -> tuple[list[Phase], Counter[str]]:
    """The hot agent one order per request, then batched; then the many agents batched."""
    seen: Counter[str] = Counter()
    single, hot, many = Phase("single"), Phase("hot"), Phase("many")
    single_count = min(options.single_orders, options.hot_orders - 1)
    batched = options.hot_orders - single_count
    console.print(f"hot agent: {single_count} orders one per request, {options.single_in_flight} in flight …")
    await _drive(single, clients[:1], sku, single_count, batch=1, in_flight=options.single_in_flight, seen=seen)
    console.print(f"hot agent: {batched} orders, {options.batch} per request …")
    await _drive(hot, clients[:1], sku, batched, batch=options.batch, in_flight=options.in_flight, seen=seen)
    console.print(f"{options.agent_count} agents: {options.many_orders} orders, {options.batch} per request …")
    await _drive(
        many, clients[1:], sku, options.many_orders, batch=options.batch, in_flight=options.in_flight, seen=seen
    )
    return [single, hot, many], seen


def register(bench: typer.Typer) -> None:
    """Add `kaquan bench agent`."""

    @bench.command("agent")
    def bench_agent(
        hot_orders: Annotated[int, typer.Option(min=1, help="orders from the one hot agent")] = 20_000,
        single_orders: Annotated[int, typer.Option(min=1, help="of those, sent one order per request")] = 3_000,
        many_orders: Annotated[int, typer.Option(min=1, help="orders spread over the many agents")] = 20_000,
        agent_count: Annotated[int, typer.Option("--agents", min=1, help="how many agents share the last phase")] = 50,
        batch: Annotated[int, typer.Option(min=1, max=200, help="orders per signed request")] = 200,
        in_flight: Annotated[int, typer.Option(min=1, help="batched requests in flight at once")] = 8,
        single_in_flight: Annotated[int, typer.Option(min=1, help="one-order requests in flight at once")] = 96,
        workers: Annotated[
            int, typer.Option(min=0, help="server processes apart from the load generator; 0: the app in process")
        ] = 2,
    ) -> None:
        """Signed open-API orders: one hot agent (one per request, then batched), then many agents."""
        options = Options(
            hot_orders, single_orders, many_orders, agent_count, batch, in_flight, single_in_flight, workers
        )
        print(json.dumps(run(lambda rt: bench_run(rt, options))))
