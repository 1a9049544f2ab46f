"""`allocation.sell_held`: a paid order's reserved units sold at once, or word that its hold lapsed."""

import pytest
from sqlalchemy import update
from tests.support.builders import given_segment_sku, given_sku_with_codes, place_order

from kaquan.inventory import allocation
from kaquan.inventory.errors import IllegalTransition
from kaquan.inventory.models import Code
from kaquan.orders import service as orders
from kaquan.runtime import Runtime


async def holder_of(rt: Runtime, number: str) -> int:
    async with rt.db.read() as session:
        return (await orders.by_number(session, number)).id


@pytest.mark.parametrize("kind", ["codes", "segment"])
async def test_an_order_holding_its_units_has_them_sold(rt: Runtime, kind: str) -> None:
    sku = await given_sku_with_codes(rt, 5) if kind == "codes" else await given_segment_sku(rt, start=1, end=100)
    order_id = await holder_of(rt, (await place_order(rt, sku, 3))[0])

    async with rt.db.transaction() as session:
        assert await allocation.sell_held(session, order_id, quantity=3, stock_kind=kind)

    async with rt.db.read() as session:
        assert await allocation.held_units(session, order_id, "sold") == 3
        assert await allocation.held_units(session, order_id, "reserved") == 0


@pytest.mark.parametrize("kind", ["codes", "segment"])
async def test_an_order_whose_hold_lapsed_sells_nothing_and_says_so(rt: Runtime, kind: str) -> None:
    sku = await given_sku_with_codes(rt, 5) if kind == "codes" else await given_segment_sku(rt, start=1, end=100)
    order_id = await holder_of(rt, (await place_order(rt, sku, 3))[0])
    async with rt.db.transaction() as session:
        await allocation.release(session, order_id)

    async with rt.db.transaction() as session:
        assert not await allocation.sell_held(session, order_id, quantity=3, stock_kind=kind)

    async with rt.db.read() as session:
        assert await allocation.held_units(session, order_id, "sold") == 0


async def test_an_order_holding_only_some_of_its_codes_is_refused_and_nothing_is_sold(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 5)
    order_id = await holder_of(rt, (await place_order(rt, sku, 3))[0])
    async with rt.db.transaction() as session:  # one code lost its hold: the order holds 2 of its 3
        [one] = (await session.execute(Code.__table__.select().where(Code.order_id == order_id).limit(1))).all()
        await session.execute(
            update(Code).where(Code.id == one.id).values(status="available", order_id=None, hold_until=None)
        )

    with pytest.raises(IllegalTransition):
        async with rt.db.transaction() as session:
            await allocation.sell_held(session, order_id, quantity=3, stock_kind="codes")

    async with rt.db.read() as session:
        assert await allocation.held_units(session, order_id, "reserved") == 2
        assert await allocation.held_units(session, order_id, "sold") == 0
