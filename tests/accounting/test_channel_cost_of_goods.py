"""The cost of goods of agents' and marketplaces' orders: an outbox event written in the transaction that delivers
them, booked by the worker once per order, and expected by the books for every delivered order of every channel."""

import asyncio

from sqlalchemy import func, select, update
from tests.support.accounting import balances, books, given_costed_sku, ledger_problems, transfers
from tests.support.agents import agent_client, given_agent, given_price
from tests.support.marketplace import given_store, given_store_price, import_file, order_file

from kaquan import accounting
from kaquan.client import NewOrder, Order
from kaquan.kit import clock, outbox
from kaquan.kit.outbox import OutboxEvent
from kaquan.runtime import Runtime

COSTS = ("cogs:CNY", "inventory:CNY")


async def pending(rt: Runtime) -> set[int]:
    async with rt.db.read() as session:
        return await accounting.pending_cost_of_goods(session)


async def cost_events(rt: Runtime) -> list[tuple[bool, bool]]:
    """Each cost-of-goods event: (done, given up)."""
    async with rt.db.read() as session:
        rows = await session.execute(
            select(OutboxEvent.done_at.is_not(None), OutboxEvent.failed_at.is_not(None))
            .where(OutboxEvent.topic == accounting.COST_OF_GOODS_TOPIC)
            .order_by(OutboxEvent.id)
        )
        return [(bool(done), bool(failed)) for done, failed in rows]


async def cost_references(rt: Runtime) -> list[str]:
    return sorted(transfer.reference or "" for transfer in await transfers(rt.db, "cogs"))


async def test_an_agents_orders_are_booked_at_cost_by_the_worker_not_on_the_agents_path(rt: Runtime) -> None:
    sku = await given_costed_sku(rt, (3, 300), (5, 450))
    await given_price(rt, sku.code, 800)
    agent = await given_agent(rt, deposit_minor=100_000)
    async with agent_client(rt, agent) as kq:
        single = await kq.place_order("A-1", sku.code, 2)
        batch = await kq.place_orders([NewOrder("A-2", sku.code, 2), NewOrder("A-3", sku.code, 1)])
    numbers = [single.order_no, *(order.order_no for order in batch if isinstance(order, Order))]

    assert await transfers(rt.db, "cogs") == []
    assert await balances(rt.db, *COSTS) == {"cogs:CNY": 0, "inventory:CNY": 0}
    assert len(await pending(rt)) == 3
    assert await books(rt.db, []) == []  # waiting in the outbox is not missing

    await outbox.run_due(rt.db)

    assert await cost_references(rt) == sorted(f"cogs:{number}" for number in numbers)
    assert await balances(rt.db, *COSTS) == {"cogs:CNY": 3 * 300 + 2 * 450, "inventory:CNY": -(3 * 300 + 2 * 450)}
    assert await pending(rt) == set()
    assert await books(rt.db, []) == []
    assert await ledger_problems(rt.db) == []


async def test_a_marketplaces_orders_are_booked_at_cost_by_the_worker_once(rt: Runtime) -> None:
    await given_store(rt)
    sku = await given_costed_sku(rt, (5, 250))
    await given_store_price(rt, sku, 1000)
    delivered = await import_file(rt, order_file(f"TB-1,{sku.code},2", f"TB-2,{sku.code},1"))
    await import_file(rt, order_file(f"TB-1,{sku.code},2"))  # delivered again: nothing new to cost

    assert await cost_events(rt) == [(False, False)]
    await outbox.run_due(rt.db)
    await outbox.run_due(rt.db)

    assert await cost_references(rt) == sorted(f"cogs:{answer.order_no}" for answer in delivered)
    assert await balances(rt.db, *COSTS) == {"cogs:CNY": 750, "inventory:CNY": -750}
    assert await cost_events(rt) == [(True, False)]
    assert await books(rt.db, []) == []


async def test_an_async_agent_order_is_costed_once_the_worker_filled_it(rt: Runtime) -> None:
    sku = await given_costed_sku(rt, (4, 300))
    await given_price(rt, sku.code, 800)
    agent = await given_agent(rt, deposit_minor=10_000)
    async with agent_client(rt, agent) as kq:
        accepted = await kq.place_order("A-1", sku.code, 3, mode="async")

    await outbox.run_due(rt.db)  # fills the order, which writes its cost event
    assert await transfers(rt.db, "cogs") == []
    await outbox.run_due(rt.db)

    assert await cost_references(rt) == [f"cogs:{accepted.order_no}"]
    assert await balances(rt.db, *COSTS) == {"cogs:CNY": 900, "inventory:CNY": -900}
    assert await books(rt.db, []) == []


async def test_a_delivered_agent_order_whose_cost_event_was_given_up_is_named_by_the_books(rt: Runtime) -> None:
    sku = await given_costed_sku(rt, (2, 300))
    await given_price(rt, sku.code, 800)
    agent = await given_agent(rt, deposit_minor=10_000)
    async with agent_client(rt, agent) as kq:
        order = await kq.place_order("A-1", sku.code, 1)
    async with rt.db.transaction() as session:
        await session.execute(
            update(OutboxEvent).where(OutboxEvent.topic == accounting.COST_OF_GOODS_TOPIC).values(failed_at=clock.now())
        )

    assert await books(rt.db, []) == [
        f"order {order.order_no}: delivered, but its cost of goods (¥3.00) is not on the ledger"
    ]


async def test_two_workers_running_the_same_events_book_each_order_once(rt: Runtime) -> None:
    sku = await given_costed_sku(rt, (12, 300))
    await given_price(rt, sku.code, 800)
    agent = await given_agent(rt, deposit_minor=100_000)
    async with agent_client(rt, agent) as kq:
        placed = [await kq.place_order(f"A-{n}", sku.code, 1) for n in range(6)]
    async with rt.db.read() as session:
        ids = sorted(await accounting.pending_cost_of_goods(session))
    async with rt.db.transaction() as session:  # the same orders named twice more: a replayed or doubled event
        await accounting.book_deliveries_later(session, ids)
        await accounting.book_deliveries_later(session, ids[::-1])

    for _ in range(10):  # an event that met the other worker's booking fails and is run again, finding it booked
        await asyncio.gather(outbox.run_due(rt.db), outbox.run_due(rt.db))
        async with rt.db.transaction() as session:
            if not await outbox.pending_payloads(session, accounting.COST_OF_GOODS_TOPIC):
                break
            await outbox.mark_all_due(session)

    assert await cost_references(rt) == sorted(f"cogs:{order.order_no}" for order in placed)
    assert await balances(rt.db, *COSTS) == {"cogs:CNY": 1800, "inventory:CNY": -1800}
    assert all(done and not failed for done, failed in await cost_events(rt))
    async with rt.db.read() as session:
        assert (
            await session.execute(select(func.count()).where(OutboxEvent.topic == accounting.COST_OF_GOODS_TOPIC))
        ).scalar_one() == len(placed) + 2
    assert await books(rt.db, []) == []
    assert await ledger_problems(rt.db) == []
