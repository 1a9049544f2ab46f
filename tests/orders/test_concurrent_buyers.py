"""Invariant 1 and 2 under real concurrency: a code is sold at most once, and stock adds up."""

import asyncio
import secrets

import pytest
from sqlalchemy import func, select
from tests.support.builders import buy, given_segment_sku, given_sku_with_codes, place_order, stock_of
from tests.support.races import each_reads_before_any_writes

from kaquan.catalog import service as catalog
from kaquan.catalog.models import Sku
from kaquan.inventory.claims import allocation
from kaquan.inventory.models import Code
from kaquan.kit.db import Database
from kaquan.kit.shortcache import ShortCache
from kaquan.orders.models import Order
from kaquan.runtime import Runtime

BUYERS = 200
RACING_BUYERS = 10  # the control experiment's: they meet after the read that decides, so a few are enough


async def test_two_hundred_buyers_racing_for_one_hundred_codes_get_each_code_once(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 100)

    bought = await asyncio.gather(*(buy(rt, sku) for _ in range(BUYERS)))

    sold = [code for b in bought if b.ok for code in b.codes]
    assert len(sold) == 100
    assert len(set(sold)) == 100
    assert {b.error for b in bought if not b.ok} == {"out_of_stock"}
    assert all(b.status == "delivered" for b in bought if b.ok)
    stock = await stock_of(rt, sku)
    assert (stock.available, stock.reserved, stock.sold, stock.voided) == (0, 0, 100, 0)
    assert stock.adds_up
    await _every_paid_order_delivered(rt.db)


async def test_two_hundred_buyers_racing_for_one_segment_get_disjoint_serials(rt: Runtime) -> None:
    sku = await given_segment_sku(rt, start=1, end=100)

    bought = await asyncio.gather(*(buy(rt, sku) for _ in range(BUYERS)))

    serials = [s for b in bought if b.ok for s in b.serials]
    assert len(serials) == 100
    assert len(set(serials)) == 100
    assert sorted(serials) == [f"GC{n:08d}" for n in range(1, 101)]
    stock = await stock_of(rt, sku)
    assert (stock.available, stock.reserved, stock.sold) == (0, 0, 100)
    assert stock.adds_up


async def test_a_wholesale_buyer_gets_one_contiguous_range(rt: Runtime) -> None:
    sku = await given_segment_sku(rt, start=500, end=20_499)

    first, second = await asyncio.gather(buy(rt, sku, 10_000), buy(rt, sku, 10_000))

    for bought in (first, second):
        assert bought.ok
        numbers = [int(s[2:]) for s in bought.serials]
        assert numbers == list(range(numbers[0], numbers[0] + 10_000))
    assert set(first.serials).isdisjoint(second.serials)


async def test_without_the_protection_the_race_is_real(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control experiment: with locks and IMMEDIATE transactions switched off, concurrent claims collide.

    The race is certain: no buyer goes on from the read that decides until every buyer has made it (a
    rendezvous). On PostgreSQL that read is the claim of an available code (`claim_codes`): all of them
    take the same code, and the orders outnumber the codes held. On SQLite the order's INSERT, which comes
    before the claim, takes the one write lock, so a rendezvous after the claim would wait for ever on its
    holder; there the buyers meet right after their transaction's first read, the SKU's (read from the
    database, not from the process's short cache, so that each transaction has its snapshot): all then hold
    a snapshot older than the first writer's commit, and all of them but that writer, at most, fail with
    "database is locked".
    """
    sku = await given_sku_with_codes(rt, 20)
    if rt.db.is_postgresql:
        deciding_read: tuple[object, str] = (allocation, "claim_codes")
    else:
        monkeypatch.setattr(catalog, "_for_sale", ShortCache[Sku](ttl_s=-1))
        deciding_read = (catalog, "sku_for_sale")

    async def place() -> str | None:
        try:
            number, _, _ = await place_order(rt, sku, 1, key=secrets.token_hex(6))
            return number
        except Exception as exc:
            return type(exc).__name__

    with rt.db.unprotected(), each_reads_before_any_writes(*deciding_read, contenders=RACING_BUYERS):
        results = await asyncio.gather(*(place() for _ in range(RACING_BUYERS)))

    async with rt.db.read() as session:
        orders = (await session.execute(select(func.count()).select_from(Order))).scalar_one()
        held = (
            await session.execute(select(func.count()).select_from(Code).where(Code.status != "available"))
        ).scalar_one()
    double_sold = orders > held
    lost_to_errors = any(r is not None and not r.isdigit() for r in results)
    assert double_sold or lost_to_errors, "the unprotected claim should have raced"


async def _every_paid_order_delivered(db: Database) -> None:
    async with db.read() as session:
        statuses = dict((await session.execute(select(Order.status, func.count()).group_by(Order.status))).all())
    assert set(statuses) <= {"delivered", "refunded"}, statuses
