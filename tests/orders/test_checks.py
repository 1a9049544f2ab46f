"""`orders.checks.check_holdings`: every order awaiting payment or delivered holds exactly the units it bought."""

from sqlalchemy import select, update
from tests.support.builders import GivenSku, buy, given_segment_sku, given_sku_with_codes, pay, place_order

from kaquan.inventory.models import Code
from kaquan.orders import service as orders
from kaquan.orders.checks import Unmatched, check_holdings
from kaquan.orders.models import Order
from kaquan.runtime import Runtime


async def placed(rt: Runtime, sku: GivenSku, quantity: int) -> Order:
    number, _, _ = await place_order(rt, sku, quantity)
    async with rt.db.read() as session:
        return await orders.by_number(session, number)


async def test_orders_holding_what_they_bought_pass_the_check(rt: Runtime) -> None:
    codes = await given_sku_with_codes(rt, 5)
    serials = await given_segment_sku(rt, start=1, end=1_000)
    unpaid = await placed(rt, codes, 2)
    await buy(rt, codes, 1)  # delivered: holds its code sold
    await placed(rt, serials, 300)  # holds a range of 300 serials

    async with rt.db.read() as session:
        assert await check_holdings(rt.db, session, source=unpaid.source) == []


async def test_a_code_taken_by_a_second_order_shows_on_both_orders(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 5)
    first = await placed(rt, sku, 2)
    second = await placed(rt, sku, 1)
    async with rt.db.transaction() as session:  # a code sold twice, written past the services
        taken = (await session.execute(select(Code.id).where(Code.order_id == first.id).limit(1))).scalar_one()
        await session.execute(update(Code).where(Code.id == taken).values(order_id=second.id))

    async with rt.db.read() as session:
        unmatched = await check_holdings(rt.db, session, source=first.source)

    assert unmatched == [
        Unmatched(first.id, first.number, quantity=2, held=1),
        Unmatched(second.id, second.number, quantity=1, held=2),
    ]
    assert [order.short for order in unmatched] == [1, 0]


async def test_orders_that_gave_their_codes_back_are_not_checked_and_other_sources_are_left_out(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 5)
    cancelled = await placed(rt, sku, 2)
    async with rt.db.transaction() as session:
        await orders.cancel(rt.db, session, cancelled.id)
    _, _, token = await place_order(rt, sku, 1)
    await pay(rt, token)
    async with rt.db.transaction() as session:  # an order of another source, its code lost
        await session.execute(update(Order).where(Order.id != cancelled.id).values(source="elsewhere"))
        await session.execute(update(Code).where(Code.order_id.is_not(None)).values(order_id=None))

    async with rt.db.read() as session:
        assert await check_holdings(rt.db, session, source=cancelled.source) == []
        [lost] = await check_holdings(rt.db, session, source="elsewhere")

    assert (lost.quantity, lost.held, lost.short) == (1, 0, 1)
